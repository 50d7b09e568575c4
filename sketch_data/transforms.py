"""Train and eval transforms for sketches, built around the model's own image processor.

Eval is exactly the processor's `val_transforms` (so `pipeline()` sees what validation saw), after
`to_rgb`. Training adds geometry that fills with white, since sketches are black on white.
"""

from collections.abc import Callable
from dataclasses import dataclass

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


class BatchTransform:
    """Lazily turn a batch of decoded images into model inputs: the function given to `Dataset.set_transform`."""

    def __init__(self, transform: Callable):
        self.transform = transform

    def __call__(self, batch: dict) -> dict:
        out = {"pixel_values": [self.transform(image) for image in batch["image"]]}
        if "label" in batch:
            out["labels"] = batch["label"]
        return out


def _val_steps(processor):
    """Split the processor's eval pipeline into (resize, crop, to-tensor, normalize), to put augmentation between."""
    steps = processor.val_transforms.transforms
    if len(steps) != 4:
        raise ValueError(f"unexpected eval transform {processor.val_transforms}; use augment policy 'timm'.")
    return steps
