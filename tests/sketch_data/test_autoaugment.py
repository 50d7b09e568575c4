"""The sketch auto-augment policy: white fill, each sub-policy acts, no inversion, wired into --augment."""

import dataclasses

import numpy as np
import pytest
import timm
import torch
from PIL import Image, ImageChops, ImageDraw
from torchvision.transforms.v2 import functional as F
from transformers import TimmWrapperImageProcessor

from sketch_data.autoaugment import (
    SUB_POLICIES,
    SketchAutoAugment,
    rotate,
    shear_x,
    translate,
)
from sketch_data.transforms import SketchAugment, train_transform


def sketch(size: int = 64) -> Image.Image:
    """A gray stroke (value 100) on white, away from the borders."""
    image = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(image).line([(16, 20), (48, 40)], fill=(100, 100, 100), width=5)
    return image


def always(index: int) -> SketchAutoAugment:
    """Only sub-policy `index`, each operation with probability 1."""
    return SketchAutoAugment((tuple(dataclasses.replace(op, probability=1.0) for op in SUB_POLICIES[index]),))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(int)


@pytest.mark.parametrize("operation", [rotate, shear_x, translate(8, 0), translate(0, 6)],
                         ids=["rotate", "shear_x", "translate_x", "translate_y"])
def test_geometric_operations_fill_with_white(operation):
    torch.manual_seed(0)
    white = Image.new("RGB", (64, 64), "white")
    assert pixels(operation(white)).min() == 255  # black fill would draw fake strokes at the borders
    moved = operation(sketch())
    assert ImageChops.difference(moved, sketch()).getbbox() is not None
    assert pixels(moved)[[0, -1]].min() == 255 and pixels(moved)[:, [0, -1]].min() == 255


def test_rotate_then_posterize():
    torch.manual_seed(0)
    out = pixels(always(0)(sketch()))
    assert set(np.unique(out)) <= {0, 32, 64, 96, 128, 160, 192, 224}  # 3 bits kept
    assert not np.array_equal(out, pixels(F.posterize(sketch(), 3)))  # and rotated first


def test_shear_then_autocontrast():
    torch.manual_seed(0)
    out = pixels(always(1)(sketch()))
    assert out.min() == 0 and out.max() == 255  # the gray stroke stretched to black
    assert not np.array_equal(out, pixels(F.autocontrast(sketch())))  # and sheared first


def test_translate_x_8_then_y_6_pixels():
    torch.manual_seed(0)
    out = always(2)(sketch())
    shifts = [(dx, dy) for dx in (8, -8) for dy in (6, -6)]
    expected = [F.affine(sketch(), angle=0.0, translate=[dx, dy], scale=1.0, shear=[0.0, 0.0], fill=(255, 255, 255))
                for dx, dy in shifts]
    assert any(np.array_equal(pixels(out), pixels(e)) for e in expected)


def test_last_sub_policy_equalizes_and_never_inverts():
    out = always(3)(sketch())
    assert np.array_equal(pixels(out), pixels(F.equalize(sketch())))
    assert pixels(out)[0, 0].tolist() == [255, 255, 255]  # the background stays white


def test_every_sub_policy_is_chosen():
    torch.manual_seed(0)
    chosen = set()
    policy = SketchAutoAugment(tuple((dataclasses.replace(p[0], apply=lambda image, i=i: chosen.add(i) or image),)
                                     for i, p in enumerate(SUB_POLICIES)))
    for _ in range(40):
        policy(sketch())
    assert chosen == {0, 1, 2, 3}


def test_augment_option_puts_the_policy_in_the_training_transform():
    cfg = timm.models.get_pretrained_cfg("test_convnext").to_dict()
    cfg.update(input_size=(3, 32, 32), crop_pct=1.0)
    transform = train_transform(TimmWrapperImageProcessor(pretrained_cfg=cfg), SketchAugment(policy="sketch_autoaugment"))
    assert any(isinstance(step, SketchAutoAugment) for step in transform.transforms)
    assert transform(sketch()).shape == (3, 32, 32)
