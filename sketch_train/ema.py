"""Exponential moving average of the weights (timm's ModelEmaV3), evaluated and kept when it beats the live weights.

How it fits Trainer (transformers 5.23):
- After every optimizer step the EMA takes a step towards the live weights (with timm's warmup, so that
  short runs are not dominated by the initial weights).
- At every evaluation, after Trainer evaluated the live weights, the EMA weights are evaluated too (logged as
  `eval_ema_*`). If they are better on `metric_for_best_model` (or loss), they replace the live weights in the
  model, and the evaluation's metrics become theirs: the checkpoint Trainer saves next holds the EMA weights, and
  best-model tracking, early stopping and `load_best_model_at_end` see the EMA's score. The live weights are put
  back before training goes on.
- Every checkpoint also holds `ema.safetensors` (the EMA) and, when the EMA was swapped in, `live.safetensors`
  (the weights training continues from), so a run resumed from output_dir/checkpoint-N goes on exactly where it
  stopped.
- At the end: with `load_best_model_at_end`, Trainer loads the best checkpoint (EMA or live, whichever was
  saved). Without it, the model is what the last evaluation chose; with no evaluation at all, the EMA.

Single process and DDP; not DeepSpeed/FSDP, whose sharded weights this does not gather.
"""

import logging
import math
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from timm.utils import ModelEmaV3
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger(__name__)

EMA_FILE = "ema.safetensors"
LIVE_FILE = "live.safetensors"


class EmaCallback(TrainerCallback):
    """Needs the Trainer, to evaluate the EMA: SketchTrainer calls `bind(trainer)` when it is built."""

    def __init__(self, decay: float):
        self.decay = decay
        self.trainer = None
        self.ema: ModelEmaV3 | None = None
        self.evaluations = 0
        self.training = False
        self._live: dict[str, torch.Tensor] | None = None  # the live weights while the EMA's sit in the model

    def bind(self, trainer) -> None:
        if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
            raise RuntimeError("--ema_decay works on one device or with DDP (accelerate multi_gpu), not with "
                               "FSDP/DeepSpeed, whose sharded weights it cannot average; leave it off there.")
        self.trainer = trainer

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.ema = ModelEmaV3(model, decay=self.decay, use_warmup=True)
        self.training = True
        checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if state.global_step and (checkpoint / EMA_FILE).is_file():  # resuming: Trainer loaded the model already
            self.ema.module.load_state_dict(load_file(checkpoint / EMA_FILE, device=str(args.device)))
            if (checkpoint / LIVE_FILE).is_file():  # that checkpoint's model.safetensors holds the EMA weights
                model.load_state_dict(load_file(checkpoint / LIVE_FILE, device=str(args.device)))
        elif state.global_step:
            logger.warning("%s has no %s; the EMA restarts from the current weights.", checkpoint, EMA_FILE)

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self._restore_live(model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.ema.update(model, step=state.global_step)

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if self.trainer is None:
            raise RuntimeError("EmaCallback is not bound to a Trainer; use SketchTrainer or call bind(trainer).")
        if not self.training:  # trainer.evaluate() outside training: the model's weights are the result
            return
        self.evaluations += 1
        self._restore_live(model)
        live = _copy(model)
        model.load_state_dict(self.ema.module.state_dict())
        ema_metrics = self.trainer.evaluation_loop(
            self.trainer.get_eval_dataloader(), description="EMA evaluation", metric_key_prefix="eval"
        ).metrics
        key = _metric_key(args)
        chosen = _better(ema_metrics[key], metrics[key], args.greater_is_better if args.metric_for_best_model else False)
        self.trainer.log({k.replace("eval_", "eval_ema_", 1): v for k, v in ema_metrics.items()}
                         | {"eval_ema_chosen": float(chosen)})
        if chosen:
            metrics.update({k: v for k, v in ema_metrics.items() if k in metrics})
            self._live = live  # put back at the next step, after Trainer saved the checkpoint
        else:
            model.load_state_dict(live)

    def on_save(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if checkpoint.is_dir():
            save_file(_copy(self.ema.module, "cpu"), checkpoint / EMA_FILE)
            if self._live is not None:
                save_file({k: v.cpu() for k, v in self._live.items()}, checkpoint / LIVE_FILE)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        loaded_best = args.load_best_model_at_end and state.best_model_checkpoint
        if not loaded_best and self.evaluations == 0:
            model.load_state_dict(self.ema.module.state_dict())
            logger.info("No evaluation compared the EMA with the live weights; the final model is the EMA.")
        # Otherwise the model holds the best checkpoint Trainer loaded, or what the last evaluation chose.
        self._live = None
        self.training = False

    def _restore_live(self, model) -> None:
        if self._live is not None:
            model.load_state_dict(self._live)
            self._live = None


def _copy(module: torch.nn.Module, device: str | None = None) -> dict[str, torch.Tensor]:
    # contiguous: channels_last weights cannot be written to safetensors as they are
    return {k: v.detach().to(device or v.device).contiguous().clone() for k, v in module.state_dict().items()}


def _metric_key(args) -> str:
    name = args.metric_for_best_model or "loss"
    return name if name.startswith("eval_") else f"eval_{name}"


def _better(new: float, old: float, greater_is_better: bool) -> bool:
    if math.isnan(new):
        return False
    if math.isnan(old):
        return True
    return new > old if greater_is_better else new < old
