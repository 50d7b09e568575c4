"""Catch NaN/inf in training: drop that step's update, then stop or go on (`--nan_policy`); never pick a NaN model as best.

Trainer alone hides this: with `logging_nan_inf_filter` (the default) a NaN loss is left out of the logged
average, and without a grad scaler (bf16, fp32) the optimizer applies the NaN gradients, so every later
step is NaN too.
"""

import logging
import math
from collections.abc import Mapping

import torch
from transformers import TrainerCallback

from .machine import precision_name

logger = logging.getLogger(__name__)

NAN_POLICIES = ("stop", "skip")
# A model that has not had a finite step in this many tries will not recover by skipping more batches.
MAX_SKIPPED_IN_A_ROW = 10


class NonFiniteModelError(RuntimeError):
    """Training ended with a model whose weights or evaluation are NaN/inf: not worth saving as the result."""


class NanGuard(TrainerCallback):
    """Check every optimizer step's loss (and, without a grad scaler, its gradients) for NaN/inf.

    On a bad step the update is dropped (the weights stay as they were) and the step is reported;
    policy "stop" then ends training, "skip" goes on, unless MAX_SKIPPED_IN_A_ROW steps in a row fail.
    An evaluation of a model with NaN/inf loss or weights can never become the best checkpoint.
    """

    def __init__(self, policy: str = "stop"):
        if policy not in NAN_POLICIES:
            raise ValueError(f"nan_policy={policy!r}: use one of {', '.join(NAN_POLICIES)}.")
        self.policy = policy
        self.bad_steps: list[int] = []
        self.stopped_at: int | None = None
        self.final_model_finite = True
        self._nonfinite_evaluations: set[int] = set()  # steps whose evaluation gave NaN/inf
        self._losses_finite: torch.Tensor | None = None  # of the micro-batches since the last optimizer step
        self._in_a_row = 0
        self._hook = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._hook = model.register_forward_hook(self._record_loss)

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        scaler = _has_grad_scaler(args)
        problem = self._step_problem(model, args.device, check_gradients=not scaler)
        self._losses_finite = None
        if problem is None:
            self._in_a_row = 0
            return
        step = state.global_step + 1
        self.bad_steps.append(step)
        self._in_a_row += 1
        if not scaler:  # a grad scaler sees the same non-finite gradients and skips the step by itself
            for parameter in model.parameters():
                parameter.grad = None  # optimizers leave parameters without a gradient untouched
        precision = precision_name(args)
        if self.policy == "stop" or self._in_a_row >= MAX_SKIPPED_IN_A_ROW:
            self.stopped_at = step
            control.should_training_stop = True
            reason = "--nan_policy stop" if self.policy == "stop" else f"{self._in_a_row} bad steps in a row"
            logger.error(
                "Step %d: %s under %s; the update was dropped and training stops (%s). The weights are those "
                "of step %d. Lower the learning rate, raise warmup, or try --precision fp32.",
                step, problem, precision, reason, state.global_step,
            )
        else:
            logger.warning("Step %d: %s under %s; skipped this batch's update (--nan_policy skip).",
                           step, problem, precision)
        return control

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        loss = metrics.get("eval_loss", 0.0)
        if math.isfinite(loss) and _is_finite(model):
            return
        logger.warning("Step %d: eval loss is %s or the weights hold NaN/inf; this evaluation cannot make it "
                       "the best model.", state.global_step, loss)
        self._nonfinite_evaluations.add(state.global_step)
        if args.metric_for_best_model:
            key = args.metric_for_best_model
            # NaN compares false with everything, so Trainer never records this step as the best.
            metrics[key if key.startswith("eval_") else f"eval_{key}"] = math.nan

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        # Trainer has loaded the best checkpoint by now, if asked to; the best is never a NaN evaluation.
        loaded_best = args.load_best_model_at_end and state.best_model_checkpoint is not None
        evaluated_nonfinite = state.global_step in self._nonfinite_evaluations and not loaded_best
        self.final_model_finite = _is_finite(model) and not evaluated_nonfinite

    def metrics(self) -> dict[str, int]:
        """For train_results.json: how many steps were bad, and where training stopped because of them."""
        stopped = {"train_stopped_at_nonfinite_step": self.stopped_at} if self.stopped_at else {}
        return {"train_nonfinite_steps": len(self.bad_steps), **stopped}

    def check_final_model(self) -> None:
        if not self.final_model_finite:
            raise NonFiniteModelError(
                f"training ended with a model whose weights or eval loss are NaN/inf (NaN/inf training steps: "
                f"{self.bad_steps or 'none'}), so it was not saved as the result. Rerun with a lower learning rate, "
                "more warmup or --precision fp32; --load_best_model_at_end true keeps the best finite checkpoint."
            )

    def _record_loss(self, module, inputs, output) -> None:
        if not module.training:
            return
        value = output.get("loss") if isinstance(output, Mapping) else None
        if value is None:  # a loss computed outside the model (label smoothing): its logits tell the same
            value = output.get("logits") if isinstance(output, Mapping) else output[0]
        finite = torch.isfinite(value.detach()).all()  # stays on the device: one sync per optimizer step
        self._losses_finite = finite if self._losses_finite is None else self._losses_finite & finite

    def _step_problem(self, model, device, check_gradients: bool) -> str | None:
        if not self._all_losses_finite(device):
            return "training loss is NaN/inf"
        gradients = [p.grad for p in model.parameters() if p.grad is not None]
        # One fused norm over all gradients is NaN/inf exactly when some gradient is (or overflows fp32);
        # a check per parameter costs ~2% of a small model's step.
        if check_gradients and gradients and not bool(torch.isfinite(torch.nn.utils.get_total_norm(gradients))):
            return "gradients are NaN/inf"
        return None

    def _all_losses_finite(self, device) -> bool:
        """Over every process, so that all of them drop the same step and stop together."""
        finite = self._losses_finite if self._losses_finite is not None else torch.tensor(True, device=device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            finite = finite.to(torch.int32)  # not every backend reduces bools
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        return bool(finite)


def _has_grad_scaler(args) -> bool:
    """As accelerate decides: fp16 off the CPU gets a GradScaler, whose overflowing steps are routine, not faults."""
    return args.fp16 and args.device.type != "cpu" and not args.deepspeed


def _is_finite(model) -> bool:
    tensors = [*model.parameters(), *model.buffers()]
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors if t.is_floating_point()]).all())
