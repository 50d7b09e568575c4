"""Sketch transforms: eval equals the processor's, geometry fills with white, flips for TTA."""

import numpy as np
import timm
import torch
from PIL import Image
from transformers import TimmWrapperImageProcessor

from sketch_data.transforms import SketchAugment, eval_transform, flipped, train_transform


def processor(size: int = 32) -> TimmWrapperImageProcessor:
    cfg = timm.models.get_pretrained_cfg("test_convnext").to_dict()
    cfg.update(input_size=(3, size, size), crop_pct=1.0, mean=(1.0, 1.0, 1.0), std=(0.5, 0.5, 0.5))
    return TimmWrapperImageProcessor(pretrained_cfg=cfg)


def test_eval_transform_is_the_processors_after_rgb_conversion():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50), dtype=np.uint8), "L")
    p = processor()
    assert torch.equal(eval_transform(p)(image), p.val_transforms(image.convert("RGB")))


def test_rotation_fills_with_white_not_black():
    white = Image.new("RGB", (32, 32), "white")
    augment = SketchAugment(hflip=0, rotate_degrees=45, translate=0.3, scale=0.3)
    torch.manual_seed(0)
    out = train_transform(processor(), augment)(white)
    # mean 1, std 0.5: white is exactly 0 after normalisation, black would be -2
    assert out.abs().max() < 1e-6


def test_flipped_view_mirrors_the_tensor():
    image = Image.fromarray(np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1)), "L")
    base = eval_transform(processor())
    assert torch.equal(flipped(base)(image), torch.flip(base(image), dims=[-1]))
    assert torch.equal(flipped(base, horizontal=False)(image), torch.flip(base(image), dims=[-2]))
