"""The optional competition techniques, gathered into what Trainer takes: mixup/CutMix (collator and loss),
layer-wise learning-rate decay (optimizer), EMA and the augmentation curriculum (callbacks).

Each is off unless its option is set; with all off this is Trainer's plain setup.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from timm.data import Mixup
from transformers import Trainer, TrainerCallback

from sketch_data.transforms import SampleSeeds

from .curriculum import CurriculumCallback, EpochCallback, StagedTransform
from .ema import EmaCallback
from .mixup import Mixable, MixupCollator, SoftTargetLoss, build_mixup
from .optim import layer_decay_optimizer


@dataclass
class Recipe:
    collator: Callable
    compute_loss_func: Callable | None = None
    optimizer: torch.optim.Optimizer | None = None
    callbacks: list[TrainerCallback] = field(default_factory=list)
    mixup: Mixup | None = None
    # Per-example seeds of the random augmentation, so that a resumed run draws what an uninterrupted one does
    sample_seeds: SampleSeeds | None = None

    def train_batches(self, batch_fn: Callable) -> Callable:
        """The training split's `set_transform` function, marked for mixing when mixup is on."""
        return Mixable(batch_fn, self.sample_seeds) if self.mixup else batch_fn

    def attach(self, trainer: Trainer) -> None:
        """Give callbacks that evaluate (EMA) the Trainer they run in."""
        for callback in self.callbacks:
            if isinstance(callback, EmaCallback):
                if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
                    raise RuntimeError("--ema_decay works on one device or with DDP (accelerate multi_gpu), not with "
                                       "FSDP/DeepSpeed, whose sharded weights it cannot average; leave it off there.")
                callback.trainer = trainer


def build_recipe(model, args, collator: Callable, train_images: Callable, num_labels: int) -> Recipe:
    mixup = build_mixup(args, num_labels)
    sample_seeds = SampleSeeds(args.data_seed if args.data_seed is not None else args.seed)
    callbacks = [EpochCallback(sample_seeds)]
    if args.ema_decay:
        callbacks.append(EmaCallback(args.ema_decay))
    if isinstance(train_images, StagedTransform):
        callbacks.append(CurriculumCallback(train_images))
    return Recipe(
        collator=MixupCollator(collator, mixup) if mixup else collator,
        compute_loss_func=SoftTargetLoss(num_labels, args.label_smoothing_factor) if mixup else None,
        optimizer=layer_decay_optimizer(model, args) if args.layer_decay else None,
        callbacks=callbacks,
        mixup=mixup,
        sample_seeds=sample_seeds,
    )
