"""What Trainer takes beyond the model and data, from the options: the collator, loss, optimizer and every callback.

The optional competition techniques are mixup/CutMix (collator and loss), layer-wise learning-rate decay
(optimizer), EMA and the augmentation curriculum (callbacks); each is off unless its option is set. The callbacks
that always run are the per-epoch augmentation seeds and the NaN guard, then early stopping when asked for.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from timm.data import Mixup
from transformers import EarlyStoppingCallback, TrainerCallback

from sketch_data.transforms import SampleSeeds

from .curriculum import CurriculumCallback, EpochCallback, StagedTransform
from .ema import EmaCallback
from .mixup import Mixable, MixupCollator, SoftTargetLoss, build_mixup
from .nan_guard import NanGuard
from .optim import layer_decay_optimizer


@dataclass
class Recipe:
    collator: Callable
    nan_guard: NanGuard
    compute_loss_func: Callable | None = None
    optimizer: torch.optim.Optimizer | None = None
    callbacks: list[TrainerCallback] = field(default_factory=list)
    mixup: Mixup | None = None
    # Per-example seeds of the random augmentation, so that a resumed run draws what an uninterrupted one does
    sample_seeds: SampleSeeds | None = None

    def train_batches(self, batch_fn: Callable) -> Callable:
        """The training split's `set_transform` function, marked for mixing when mixup is on."""
        return Mixable(batch_fn, self.sample_seeds) if self.mixup else batch_fn


def build_recipe(model, args, collator: Callable, train_images: Callable, num_labels: int,
                 extra_callbacks: list[TrainerCallback] | None = None) -> Recipe:
    """The recipe the options ask for; `extra_callbacks` (a benchmark's timer, say) run after the recipe's own."""
    mixup = build_mixup(args, num_labels)
    sample_seeds = SampleSeeds(args.data_seed if args.data_seed is not None else args.seed)
    nan_guard = NanGuard(args.nan_policy)
    callbacks = [EpochCallback(sample_seeds), nan_guard]
    if args.ema_decay:
        callbacks.append(EmaCallback(args.ema_decay))
    if isinstance(train_images, StagedTransform):
        callbacks.append(CurriculumCallback(train_images))
    if args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(args.early_stopping_patience))
    return Recipe(
        nan_guard=nan_guard,
        collator=MixupCollator(collator, mixup) if mixup else collator,
        compute_loss_func=SoftTargetLoss(num_labels, args.label_smoothing_factor) if mixup else None,
        optimizer=layer_decay_optimizer(model, args) if args.layer_decay else None,
        callbacks=callbacks + list(extra_callbacks or []),
        mixup=mixup,
        sample_seeds=sample_seeds,
    )
