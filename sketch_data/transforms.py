"""Train and eval transforms for sketches, built around the model's own image processor.

Eval is exactly the processor's `val_transforms` (so `pipeline()` sees what validation saw), after
`to_rgb`. Training adds geometry that fills with white, since sketches are black on white.
"""

import contextlib
import dataclasses
import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms import v2

from .autoaugment import SketchAutoAugment
from .images import WHITE, to_rgb

AUGMENT_POLICIES = ("sketch", "sketch_autoaugment", "timm")


@dataclass
class SketchAugment:
    """Training augmentation options; every geometric one fills exposed area with white."""

    hflip: float = 0.5
    vflip: float = 0.0
    rotate_degrees: float = 0.0
    translate: float = 0.0
    scale: float = 0.0
    policy: str = "sketch"  # "sketch": the options above; "sketch_autoaugment": those + SketchAutoAugment; "timm"


# The options above but the policy: the flags of DataArguments, a curriculum stage's keys, a model card's recipe
AUGMENT_OPTIONS = tuple(option.name for option in dataclasses.fields(SketchAugment) if option.name != "policy")


def eval_transform(processor) -> Callable:
    return v2.Compose([to_rgb, processor.val_transforms])


def train_transform(processor, augment: SketchAugment) -> Callable:
    if augment.policy == "timm":
        return v2.Compose([to_rgb, processor.train_transforms])
    if augment.policy not in AUGMENT_POLICIES:
        raise ValueError(f"augment policy {augment.policy!r}: use {', '.join(AUGMENT_POLICIES)}.")
    resize, crop, to_tensor, normalize = _val_steps(processor)
    # After the crop, so the policy's pixel offsets are in model-input pixels.
    geometry = [SketchAutoAugment()] if augment.policy == "sketch_autoaugment" else []
    if augment.rotate_degrees or augment.translate or augment.scale:
        geometry.append(
            v2.RandomAffine(
                degrees=augment.rotate_degrees,
                translate=(augment.translate, augment.translate) if augment.translate else None,
                scale=(1 - augment.scale, 1 + augment.scale) if augment.scale else None,
                # torchvision's default, nearest, breaks the 1-2 px strokes of a downsized sketch into jagged
                # dots that no test image has
                interpolation=v2.InterpolationMode.BILINEAR,
                fill=WHITE,
            )
        )
    if augment.hflip:
        geometry.append(v2.RandomHorizontalFlip(augment.hflip))
    if augment.vflip:
        geometry.append(v2.RandomVerticalFlip(augment.vflip))
    return v2.Compose([to_rgb, resize, crop, *geometry, to_tensor, normalize])


class Flipped:
    """The same transform followed by a flip of the output tensor, for test-time augmentation.

    A class, not a closure, so that data-loading workers started with "spawn" (macOS, Windows) can pickle it.
    """

    def __init__(self, transform: Callable, horizontal: bool = True):
        self.transform, self.dims = transform, [-1] if horizontal else [-2]

    def __call__(self, image) -> torch.Tensor:
        return torch.flip(self.transform(image), dims=self.dims)


def tta_transforms(transform: Callable, tta: list[str]) -> list[Callable]:
    """The plain view, then each flip that `--tta` names ("hflip", "vflip"), in that order."""
    return [transform] + [Flipped(transform, horizontal=(name == "hflip")) for name in tta]


@contextlib.contextmanager
def seeded_rng(seed: int, numpy: bool = False) -> Iterator[None]:
    """Run the block with torch's (CPU) and Python's global generators, and numpy's if asked, seeded by `seed`;
    then put back their previous states. Random transforms (torchvision v2, timm, SketchAutoAugment) draw from
    these globals and take no generator. Numpy is opt-in: saving and restoring its state costs ~100 us, as much as
    a small image's whole transform, and only timm's Mixup (seeded per batch) draws from it.
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state() if numpy else None
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # torch.manual_seed would also seed every GPU: 100x slower
        random.seed(seed)
        if numpy:
            np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(python_state)
            if numpy:
                np.random.set_state(numpy_state)


class SampleSeeds:
    """Each training example's random augmentation is a function of (seed, epoch, image_path) alone.

    Drawing it from the global generators instead makes it depend on when the example is loaded: Trainer
    (with accelerate's one-batch prefetch) loads the first batches after a resume before it restores the
    checkpoint's RNG state, so a resumed run augmented them differently from an uninterrupted one (docs/resume.md).
    Seeded per example, augmentation is the same with or without a resume, and with any number of workers;
    the global generators are left untouched for what trains on them (dropout, drop path).
    The epoch lives in shared memory, set by a callback at each epoch's start (as in sketch_train/curriculum.py).
    """

    def __init__(self, seed: int):
        self.seed = seed
        self.epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self.epoch.fill_(epoch)

    def seed_for(self, key: str) -> int:
        digest = hashlib.blake2b(f"{self.seed}/{int(self.epoch)}/{key}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little")


class BatchTransform:
    """Lazily turn a batch of decoded images into model inputs: the function given to `Dataset.set_transform`.

    With `seeds`, each image's random draws are seeded by its `image_path` (see `SampleSeeds`).
    """

    def __init__(self, transform: Callable, seeds: SampleSeeds | None = None):
        self.transform, self.seeds = transform, seeds

    def __call__(self, batch: dict) -> dict:
        if self.seeds is None:
            pixels = [self.transform(image) for image in batch["image"]]
        else:
            pixels = [self._seeded(image, key) for image, key in zip(batch["image"], batch["image_path"])]
        out = {"pixel_values": pixels}
        if "label" in batch:
            out["labels"] = batch["label"]
        return out

    def _seeded(self, image, key: str) -> torch.Tensor:
        with seeded_rng(self.seeds.seed_for(key)):
            return self.transform(image)


def _val_steps(processor):
    """Split the processor's eval pipeline into (resize, crop, to-tensor, normalize), to put augmentation between."""
    steps = processor.val_transforms.transforms
    if len(steps) != 4:
        raise ValueError(f"unexpected eval transform {processor.val_transforms}; use augment policy 'timm'.")
    return steps
