"""Sketch transforms: eval equals the processor's, geometry fills with white, flips for TTA."""

import numpy as np
import timm
import torch
from PIL import Image
from transformers import TimmWrapperImageProcessor

from sketch_data.transforms import (
    BatchTransform,
    Flipped,
    SketchAugment,
    eval_transform,
    train_transform,
)


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


def test_rotated_strokes_stay_smooth():
    """Bilinear, not nearest: a rotated black line on white gains grey edges, as a downsized test image has."""
    image = Image.new("L", (32, 32), "white")
    image.paste(0, (4, 15, 28, 17))
    rotate = train_transform(processor(), SketchAugment(hflip=0, rotate_degrees=30))
    torch.manual_seed(0)
    out = torch.stack([rotate(image) for _ in range(8)])
    grey = (out > -2 + 0.1) & (out < -0.1)  # mean 1, std 0.5: black is -2, white 0
    assert grey.sum() >= 100


def test_flipped_view_mirrors_the_tensor():
    image = Image.fromarray(np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1)), "L")
    base = eval_transform(processor())
    assert torch.equal(Flipped(base)(image), torch.flip(base(image), dims=[-1]))
    assert torch.equal(Flipped(base, horizontal=False)(image), torch.flip(base(image), dims=[-2]))


def test_training_batches_load_in_spawned_workers():
    """macOS and Windows start DataLoader workers with "spawn", which pickles the dataset and its transform."""
    import datasets

    from sketch_train.curriculum import StagedTransform
    from sketch_train.mixup import Mixable

    images = [Image.new("L", (40, 30), "white"), Image.new("RGB", (30, 40), "black")]
    dataset = datasets.Dataset.from_dict({"image": images, "label": [0, 1]},
                                         features=datasets.Features({"image": datasets.Image(),
                                                                     "label": datasets.ClassLabel(names=["a", "b"])}))
    augment = SketchAugment(hflip=0.5, vflip=0.5, rotate_degrees=10, translate=0.1, scale=0.1)
    staged = StagedTransform([(0, train_transform(processor(), augment)), (1, Flipped(eval_transform(processor())))])
    dataset.set_transform(Mixable(BatchTransform(staged)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=1, multiprocessing_context="spawn",
                                         collate_fn=list)
    (examples,) = list(loader)
    assert [e["labels"] for e in examples] == [0, 1]
    assert all(e["pixel_values"].shape == (3, 32, 32) for e in examples)
