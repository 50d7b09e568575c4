"""EMA of the weights: it moves behind the live weights, is evaluated, and is what the checkpoint holds when better.

A one-parameter model makes every number exact: plain SGD (lr 0.1) on (w - 1)^2 from w = 0 gives
w_t = 1 - 0.8^t, and the EMA lags behind it, closer to 0. The "closeness" metric rewards weights near 0 (the
EMA wins) or near 1 (the live weights win).
"""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import Trainer, TrainerControl, TrainerState, TrainingArguments

from sketch_train.ema import EmaCallback


class Scalar(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, labels=None):
        return {"loss": ((self.w - 1) ** 2).sum(), "logits": self.w.expand(len(x), 1)}


class Rows(torch.utils.data.Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, i):
        return {"x": torch.zeros(1), "labels": 0}


def live(step: int) -> float:
    return 1 - 0.8 ** step


def train(tmp_path, target: float, epochs: int = 2, resume: bool = False, **options) -> tuple[Trainer, EmaCallback]:
    args = TrainingArguments(**dict(
        output_dir=str(tmp_path), num_train_epochs=epochs, per_device_train_batch_size=4, learning_rate=0.1,
        optim="sgd", lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=0.0, eval_strategy="epoch",
        save_strategy="epoch", load_best_model_at_end=True, metric_for_best_model="closeness", greater_is_better=True,
        use_cpu=True, report_to="none", dataloader_num_workers=0, disable_tqdm=True, seed=0,
    ) | options)
    ema = EmaCallback(decay=0.9)
    trainer = Trainer(model=Scalar(), args=args, train_dataset=Rows(), eval_dataset=Rows(), callbacks=[ema],
                      compute_metrics=lambda p: {"closeness": -float(np.abs(p.predictions - target).mean())})
    ema.trainer = trainer
    trainer.train(resume_from_checkpoint=resume or None)
    return trainer, ema


def weight(path) -> float:
    return float(load_file(path)["w"])


def test_ema_weights_lag_behind_the_live_weights():
    model = Scalar()
    ema = EmaCallback(decay=0.9)
    state, control = TrainerState(), TrainerControl()
    args = SimpleNamespace(output_dir="unused", device="cpu")
    ema.on_train_begin(args, state, control, model=model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(1, 5):
        optimizer.zero_grad()
        model(torch.zeros(1))["loss"].backward()
        optimizer.step()
        state.global_step = step
        ema.on_step_end(args, state, control, model=model)
    assert model.w.item() == pytest.approx(live(4))
    assert 0 < ema.ema.module.w.item() < model.w.item()


def test_better_ema_weights_are_the_ones_saved_and_training_goes_on_from_the_live_ones(tmp_path):
    trainer, _ = train(tmp_path, target=0.0)  # the lagging EMA is closer to 0
    history = trainer.state.log_history
    assert [e["eval_ema_chosen"] for e in history if "eval_ema_chosen" in e] == [1.0, 1.0]
    for step in (4, 8):
        checkpoint = tmp_path / f"checkpoint-{step}"
        ema_w = weight(checkpoint / "ema.safetensors")
        assert weight(checkpoint / "model.safetensors") == pytest.approx(ema_w)  # the checkpoint holds the EMA
        assert weight(checkpoint / "live.safetensors") == pytest.approx(live(step))  # and the live weights
        assert ema_w < live(step)
    # the best evaluation (the first: everything moves away from 0) is the EMA's, and its weights were loaded at the end
    best_ema = weight(tmp_path / "checkpoint-4" / "ema.safetensors")
    assert trainer.state.best_metric == pytest.approx(-best_ema)
    assert trainer.state.best_model_checkpoint.endswith("checkpoint-4")
    assert trainer.model.w.item() == pytest.approx(best_ema)
    live_evaluations = [e["eval_closeness"] for e in history if "eval_closeness" in e]
    assert live_evaluations == pytest.approx([-live(4), -live(8)])  # training went on from the live weights


def test_worse_ema_weights_leave_the_checkpoint_alone(tmp_path):
    trainer, _ = train(tmp_path, target=1.0)
    assert [e["eval_ema_chosen"] for e in trainer.state.log_history if "eval_ema_chosen" in e] == [0.0, 0.0]
    assert weight(tmp_path / "checkpoint-8" / "model.safetensors") == pytest.approx(live(8))
    assert not (tmp_path / "checkpoint-8" / "live.safetensors").exists()
    assert trainer.model.w.item() == pytest.approx(live(8))


def test_resuming_restores_the_ema_and_the_live_weights(tmp_path):
    _, straight_ema = train(tmp_path / "straight", target=0.0)
    train(tmp_path / "resumed", target=0.0, epochs=1)
    _, resumed_ema = train(tmp_path / "resumed", target=0.0, resume=True)
    state = json.loads((tmp_path / "resumed" / "checkpoint-8" / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    assert weight(tmp_path / "resumed" / "checkpoint-8" / "live.safetensors") == pytest.approx(live(8))
    assert resumed_ema.ema.module.w.item() == pytest.approx(straight_ema.ema.module.w.item())


def test_without_evaluations_the_final_model_is_the_ema(tmp_path):
    trainer, ema = train(tmp_path, target=1.0, eval_strategy="no", load_best_model_at_end=False)
    assert trainer.model.w.item() == pytest.approx(ema.ema.module.w.item())
    assert trainer.model.w.item() < live(8)
