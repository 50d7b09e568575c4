"""The seed team's sketch auto-augment policy (`--augment sketch_autoaugment`), with its two faults fixed.

One sub-policy is chosen at random per image; each of its two operations then applies with its own
probability (as in AutoAugment):

    rotate 2-4 degrees (either way)  p 0.7,  then posterize to 3 bits    p 0.6
    shear-x 0.4 (either way)         p 0.8,  then autocontrast           p 0.4
    translate-x 8 px (either way)    p 0.8,  then translate-y 6 px       p 0.6
    equalize                         p 0.5   (the seed had "invert p 0.3" first; see below)

Fixes:
- Geometric operations fill the exposed area with WHITE. The seed filled with black, which draws black
  wedges and bars, i.e. fake strokes, on sketches that are black on white.
- The seed inverted 30% of training images but never a test image, so the model spent capacity on a polarity
  it never meets at test time, and the "white" fill above became black strokes on inverted images. Inversion is
  dropped from the policy. To train on inverted images, use `--invert true`, which folds inversion into the
  saved normalisation so that validation, prediction and pipeline() invert too (consistent, not train-only).

Offsets are in model-input pixels: the policy runs after the resize and crop (sketch_data/transforms.py).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from .images import WHITE

SHEAR_X = 0.4  # shear factor (tan of the angle), as in AutoAugment
POSTERIZE_BITS = 3


def _sign() -> int:
    return 1 if torch.rand(()) < 0.5 else -1


def rotate(image: Image.Image) -> Image.Image:
    angle = float(torch.empty(()).uniform_(2.0, 4.0)) * _sign()
    return F.rotate(image, angle, interpolation=F.InterpolationMode.BILINEAR, fill=WHITE)


def shear_x(image: Image.Image) -> Image.Image:
    degrees = math.degrees(math.atan(SHEAR_X)) * _sign()
    return F.affine(image, angle=0.0, translate=[0, 0], scale=1.0, shear=[degrees, 0.0],
                    interpolation=F.InterpolationMode.BILINEAR, fill=WHITE)


def translate(dx: int, dy: int) -> Callable[[Image.Image], Image.Image]:
    def shift(image: Image.Image) -> Image.Image:
        return F.affine(image, angle=0.0, translate=[dx * _sign(), dy * _sign()], scale=1.0, shear=[0.0, 0.0],
                        fill=WHITE)

    shift.__name__ = f"translate_{'x' if dx else 'y'}"
    return shift


def posterize(image: Image.Image) -> Image.Image:
    return F.posterize(image, POSTERIZE_BITS)


@dataclass(frozen=True)
class Op:
    apply: Callable[[Image.Image], Image.Image]
    probability: float


SUB_POLICIES: tuple[tuple[Op, ...], ...] = (
    (Op(rotate, 0.7), Op(posterize, 0.6)),
    (Op(shear_x, 0.8), Op(F.autocontrast, 0.4)),
    (Op(translate(8, 0), 0.8), Op(translate(0, 6), 0.6)),
    (Op(F.equalize, 0.5),),
)


class SketchAutoAugment:
    """Apply one randomly chosen sub-policy to a PIL image (uses torch's RNG, so DataLoader workers differ)."""

    def __init__(self, sub_policies: tuple[tuple[Op, ...], ...] = SUB_POLICIES):
        self.sub_policies = sub_policies

    def __call__(self, image: Image.Image) -> Image.Image:
        for op in self.sub_policies[int(torch.randint(len(self.sub_policies), ()))]:
            if torch.rand(()) < op.probability:
                image = op.apply(image)
        return image

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.sub_policies)} sub-policies)"
