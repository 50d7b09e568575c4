"""Augmentation curriculum: stages by epoch, each adding augmentations to those before it.

`--curriculum '[{"epoch": 0, "hflip": 0.5}, {"epoch": 5, "vflip": 0.5, "rotate_degrees": 15}]'` trains
epochs 0-4 with horizontal flips and epochs 5+ with horizontal and vertical flips and rotation. A stage's
keys are the augmentation options (hflip, vflip, rotate_degrees, translate, scale, and `augment` for the
policy); the run's own options apply before the first stage and are the base that stages add to.

Why the transform holds every stage instead of the callback calling `set_transform` at each epoch:
Trainer's DataLoader workers each hold a copy of the dataset and its transform, and persistent workers (our
default) keep that copy for the whole run, so a `set_transform` in the main process would never reach them.
`StagedTransform` reads the epoch from a tensor in shared memory, which `CurriculumCallback` updates at
`on_epoch_begin`, before Trainer starts the epoch's iterator: forked, spawned and persistent workers (and
training without workers) all switch at the stage's first batch.
"""

import dataclasses
import json
import logging
import math
from collections.abc import Callable

import torch
from transformers import TrainerCallback

from sketch_data.transforms import (
    AUGMENT_OPTIONS,
    AUGMENT_POLICIES,
    SketchAugment,
    train_transform,
)

logger = logging.getLogger(__name__)

STAGE_OPTIONS = (*AUGMENT_OPTIONS, "augment")  # "augment": the policy, as the flag names it


def parse_stages(curriculum: list[str | dict]) -> list[dict]:
    """Stages sorted by epoch, from JSON lists or objects; raises ValueError naming a bad stage."""
    stages = []
    for item in curriculum:
        try:
            value = json.loads(item) if isinstance(item, str) else item
        except json.JSONDecodeError as error:
            raise ValueError(f"curriculum {item!r} is not JSON ({error}); give a list of objects such as "
                             '\'[{"epoch": 0, "hflip": 0.5}]\'.') from None
        stages += value if isinstance(value, list) else [value]
    for stage in stages:
        _check_stage(stage)
    epochs = [stage["epoch"] for stage in stages]
    if len(set(epochs)) != len(epochs):
        raise ValueError(f"curriculum: two stages start at the same epoch ({sorted(epochs)}); merge them.")
    return sorted(stages, key=lambda stage: stage["epoch"])


def _check_stage(stage) -> None:
    if not isinstance(stage, dict) or not isinstance(stage.get("epoch"), int) or stage["epoch"] < 0:
        raise ValueError(f"curriculum stage {stage!r}: each stage is an object with an integer \"epoch\" >= 0.")
    unknown = sorted(set(stage) - {"epoch", *STAGE_OPTIONS})
    if unknown:
        raise ValueError(f"curriculum stage {stage}: unknown {unknown}; use epoch and any of {', '.join(STAGE_OPTIONS)}.")
    if stage.get("augment", "sketch") not in AUGMENT_POLICIES:
        raise ValueError(f"curriculum stage {stage}: augment must be one of {', '.join(AUGMENT_POLICIES)}.")


def stage_augments(base: SketchAugment, stages: list[dict]) -> list[tuple[int, SketchAugment]]:
    """(first epoch, augmentation in effect) per stage, each stage applied on top of the previous ones."""
    result, current = [(0, base)], base
    for stage in stages:
        changes = {("policy" if key == "augment" else key): value for key, value in stage.items() if key != "epoch"}
        current = dataclasses.replace(current, **changes)
        if stage["epoch"] == 0:
            result = [(0, current)]
        else:
            result.append((stage["epoch"], current))
    return result


class StagedTransform:
    """The transform of the stage the current epoch is in; the epoch lives in shared memory (see module doc)."""

    def __init__(self, stages: list[tuple[int, Callable]], names: list[str] | None = None):
        self.starts = [start for start, _ in stages]
        self.transforms = [transform for _, transform in stages]
        self.names = names or [repr(transform) for transform in self.transforms]
        self.epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self.epoch.fill_(epoch)

    def stage(self) -> int:
        return sum(start <= int(self.epoch) for start in self.starts) - 1

    def __call__(self, image):
        return self.transforms[self.stage()](image)


def staged_train_transform(processor, augment: SketchAugment, curriculum: list[str]) -> Callable:
    """The training transform: `train_transform`, or a `StagedTransform` when there is a curriculum."""
    if not curriculum:
        return train_transform(processor, augment)
    stages = stage_augments(augment, parse_stages(curriculum))
    return StagedTransform([(start, train_transform(processor, stage)) for start, stage in stages],
                           names=[str(stage) for _, stage in stages])


def starting_epoch(state) -> int:
    """The epoch that `on_epoch_begin` starts; `state.epoch` is fractional after a resume from a mid-epoch checkpoint."""
    return math.floor((state.epoch or 0) + 1e-6)


class EpochCallback(TrainerCallback):
    """Tell objects with `set_epoch` (e.g. `sketch_data.transforms.SampleSeeds`) which epoch is starting."""

    def __init__(self, *targets):
        self.targets = targets

    def on_epoch_begin(self, args, state, control, **kwargs):
        for target in self.targets:
            target.set_epoch(starting_epoch(state))


class CurriculumCallback(TrainerCallback):
    """Tell a `StagedTransform` which epoch is starting."""

    def __init__(self, transform: StagedTransform):
        self.transform = transform

    def on_epoch_begin(self, args, state, control, **kwargs):
        before = self.transform.stage()
        epoch = starting_epoch(state)
        self.transform.set_epoch(epoch)
        stage = self.transform.stage()
        if stage != before or epoch == 0:
            logger.info("Epoch %d: augmentation stage %d of %d: %s", epoch, stage + 1,
                        len(self.transform.starts), self.transform.names[stage])
