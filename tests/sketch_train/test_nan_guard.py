"""NanGuard under bf16 on CPU: a NaN step is reported with its number, its update dropped, then stop or skip."""

import logging
import math

import pytest
import torch
from torch import nn
from transformers import Trainer, TrainerState, TrainingArguments

from sketch_train.nan_guard import MAX_SKIPPED_IN_A_ROW, NanGuard, NonFiniteModelError


class Toy(nn.Module):
    """A linear classifier whose input is multiplied by inf on the given (1-based) training calls, and whose
    gradient (not loss) turns NaN on `bad_gradient_calls`."""

    def __init__(self, bad_calls: set[int], bad_gradient_calls: frozenset[int] = frozenset()):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.bad_calls, self.bad_gradient_calls, self.calls = bad_calls, bad_gradient_calls, 0

    def forward(self, x, labels=None):
        if self.training:
            self.calls += 1
            if self.calls in self.bad_calls:
                x = x * math.inf
        logits = self.linear(x)
        if self.training and self.calls in self.bad_gradient_calls:
            logits.register_hook(lambda grad: grad * math.nan)
        return {"loss": nn.functional.cross_entropy(logits.float(), labels), "logits": logits}


def train(tmp_path, bad_calls: set[int], guard: NanGuard | None, steps: int = 6, precision: str = "bf16",
          bad_gradient_calls: frozenset[int] = frozenset()):
    torch.manual_seed(0)
    data = [{"x": torch.randn(4), "labels": i % 3} for i in range(2 * steps)]
    model = Toy(bad_calls, bad_gradient_calls)
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=2, learning_rate=0.1,
        bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=True, save_strategy="no", report_to="none",
        disable_tqdm=True, logging_strategy="no",
    )
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[guard] if guard else None)
    trainer.train()
    return model, trainer


def weights(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_without_the_guard_one_nan_step_ruins_the_weights(tmp_path):
    """The failure NanGuard exists for: bf16 has no grad scaler, so the NaN update is applied."""
    model, _ = train(tmp_path, {3}, guard=None)
    assert weights(model).isnan().all()


def test_stop_reports_the_step_drops_its_update_and_ends_training(tmp_path, caplog):
    guard = NanGuard("stop")
    with caplog.at_level(logging.ERROR, logger="sketch_train"):
        model, trainer = train(tmp_path, {3}, guard)
    assert trainer.state.global_step == 3
    assert torch.isfinite(weights(model)).all()
    assert guard.metrics() == {"train_nonfinite_steps": 1, "train_stopped_at_nonfinite_step": 3}
    assert "Step 3: training loss is NaN/inf under bf16; the update was dropped and training stops " \
           "(--nan_policy stop). The weights are those of step 2." in caplog.text
    guard.check_final_model()  # finite: nothing raised


def test_nan_gradients_under_a_finite_loss_are_caught(tmp_path, caplog):
    guard = NanGuard("stop")
    with caplog.at_level(logging.ERROR, logger="sketch_train"):
        model, trainer = train(tmp_path, set(), guard, bad_gradient_calls=frozenset({2}))
    assert trainer.state.global_step == 2
    assert torch.isfinite(weights(model)).all()
    assert "Step 2: gradients are NaN/inf under bf16" in caplog.text


@pytest.mark.parametrize("precision", ["bf16", "fp16"])  # fp16 on CPU: autocast without a grad scaler
def test_skip_drops_only_the_bad_steps_and_finishes(tmp_path, caplog, precision):
    guard = NanGuard("skip")
    with caplog.at_level(logging.WARNING, logger="sketch_train"):
        model, trainer = train(tmp_path, {3, 5}, guard, precision=precision)
    assert trainer.state.global_step == 6
    assert torch.isfinite(weights(model)).all()
    assert guard.bad_steps == [3, 5] and guard.stopped_at is None
    assert guard.metrics() == {"train_nonfinite_steps": 2}
    assert f"Step 5: training loss is NaN/inf under {precision}; skipped this batch's update (--nan_policy skip)." \
        in caplog.text


def test_skip_gives_up_after_too_many_bad_steps_in_a_row(tmp_path):
    guard = NanGuard("skip")
    train(tmp_path, set(range(2, 100)), guard, steps=20)
    assert guard.bad_steps == list(range(2, 2 + MAX_SKIPPED_IN_A_ROW))
    assert guard.stopped_at == 1 + MAX_SKIPPED_IN_A_ROW


def test_a_nan_evaluation_can_never_be_the_best(tmp_path, caplog):
    args = TrainingArguments(output_dir=str(tmp_path), metric_for_best_model="accuracy", report_to="none")
    state, model = TrainerState(global_step=4), Toy(set())
    metrics = {"eval_loss": 1.0, "eval_accuracy": 0.9}
    NanGuard().on_evaluate(args, state, None, metrics=metrics, model=model)
    assert metrics["eval_accuracy"] == 0.9  # a finite model's evaluation is left alone
    metrics = {"eval_loss": math.nan, "eval_accuracy": 0.9}
    with caplog.at_level(logging.WARNING, logger="sketch_train"):
        NanGuard().on_evaluate(args, state, None, metrics=metrics, model=model)
    assert math.isnan(metrics["eval_accuracy"])  # NaN > best is False: Trainer never records it as best
    assert "Step 4: eval loss is nan or the weights hold NaN/inf; this evaluation cannot make it the best model." \
        in caplog.text
    with torch.no_grad():
        model.linear.bias[0] = math.inf
    metrics = {"eval_loss": 1.0, "eval_accuracy": 0.9}
    NanGuard().on_evaluate(args, state, None, metrics=metrics, model=model)
    assert math.isnan(metrics["eval_accuracy"])


def test_a_final_model_with_nan_weights_is_refused(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none")
    guard, model = NanGuard(), Toy(set())
    with torch.no_grad():
        model.linear.weight[0, 0] = math.nan
    guard.on_train_end(args, TrainerState(global_step=5), None, model=model)
    with pytest.raises(NonFiniteModelError, match=r"^training ended with a model whose weights or eval loss are NaN/inf"):
        guard.check_final_model()


@pytest.mark.parametrize("load_best, refused", [(False, True), (True, False)])
def test_a_final_model_with_nan_eval_loss_is_refused_unless_the_best_was_loaded(tmp_path, load_best, refused):
    """Finite but huge weights can give NaN logits: the last evaluation tells, unless Trainer loaded the best."""
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", metric_for_best_model="accuracy",
                             load_best_model_at_end=load_best, eval_strategy="steps", save_strategy="steps")
    state, guard, model = TrainerState(global_step=5), NanGuard(), Toy(set())
    guard.on_evaluate(args, state, None, metrics={"eval_loss": math.nan, "eval_accuracy": 0.1}, model=model)
    state.best_model_checkpoint = str(tmp_path / "checkpoint-3")
    guard.on_train_end(args, state, None, model=model)
    assert guard.final_model_finite is not refused


def test_unknown_policy():
    with pytest.raises(ValueError, match="nan_policy='retry': use one of stop, skip."):
        NanGuard("retry")


def test_the_loss_check_is_agreed_over_processes(tmp_path):
    """Under DDP every process must drop the same step and stop together; here a one-process gloo group."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        guard = NanGuard()
        assert guard._all_losses_finite("cpu")  # no forward pass recorded: nothing to report
        guard._losses_finite = torch.tensor(False)
        assert not guard._all_losses_finite("cpu")
    finally:
        torch.distributed.destroy_process_group()
