"""Augmentation curriculum: stages parse and accumulate, and the transform in effect changes at the stage's epoch,
also inside persistent DataLoader workers."""

import datasets
import numpy as np
import pytest
import timm
import torch
from PIL import Image
from transformers import TimmWrapperImageProcessor, TrainerControl, TrainerState

from run_classification import parse
from sketch_data.transforms import SketchAugment
from sketch_train.curriculum import (
    CurriculumCallback,
    StagedTransform,
    parse_stages,
    stage_augments,
    staged_train_transform,
)


def test_stages_parse_from_one_json_list_or_one_object_each():
    as_list = parse_stages(['[{"epoch": 5, "vflip": 0.5}, {"epoch": 0, "hflip": 0.5}]'])
    as_objects = parse_stages(['{"epoch": 0, "hflip": 0.5}', '{"epoch": 5, "vflip": 0.5}'])
    assert as_list == as_objects == [{"epoch": 0, "hflip": 0.5}, {"epoch": 5, "vflip": 0.5}]


@pytest.mark.parametrize("curriculum, message", [
    (['{"epoch": 0, "flip": 0.5}'], r"unknown \['flip'\]; use epoch and any of hflip, vflip"),
    (['{"hflip": 0.5}'], 'each stage is an object with an integer "epoch" >= 0'),
    (['{"epoch": 2}', '{"epoch": 2, "vflip": 1}'], r"two stages start at the same epoch \(\[2, 2\]\)"),
    (["[{epoch: 0}]"], "is not JSON"),
    (['{"epoch": 1, "augment": "autoaugment"}'], "augment must be one of sketch, sketch_autoaugment, timm"),
])
def test_bad_stages_are_named(curriculum, message):
    with pytest.raises(ValueError, match=message):
        parse_stages(curriculum)


def test_each_stage_adds_to_the_ones_before():
    base = SketchAugment(hflip=0.5, rotate_degrees=5)
    stages = parse_stages(['[{"epoch": 3, "vflip": 0.5, "rotate_degrees": 15}, {"epoch": 6, "augment": "sketch_autoaugment"}]'])
    assert stage_augments(base, stages) == [
        (0, base),
        (3, SketchAugment(hflip=0.5, vflip=0.5, rotate_degrees=15)),
        (6, SketchAugment(hflip=0.5, vflip=0.5, rotate_degrees=15, policy="sketch_autoaugment")),
    ]


def first(_):
    return 0


def second(_):
    return 1


def epoch_begins(callback: CurriculumCallback, epoch: float) -> None:
    state = TrainerState()
    state.epoch = epoch
    callback.on_epoch_begin(None, state, TrainerControl())


def test_persistent_workers_switch_transform_at_the_stage_epoch():
    staged = StagedTransform([(0, first), (2, second)])
    dataset = datasets.Dataset.from_dict({"x": [0, 1, 2, 3]})
    dataset.set_transform(lambda batch: {"stage": [staged(x) for x in batch["x"]]})
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=1, persistent_workers=True)
    callback, seen = CurriculumCallback(staged), []
    for epoch in range(4):
        epoch_begins(callback, float(epoch))
        seen.append([int(s) for batch in loader for s in batch["stage"]])
    assert seen == [[0] * 4, [0] * 4, [1] * 4, [1] * 4]


def test_a_resumed_mid_epoch_run_is_in_its_epochs_stage():
    staged = StagedTransform([(0, first), (2, second)])
    epoch_begins(CurriculumCallback(staged), 2.5)
    assert staged.stage() == 1


def test_the_staged_transform_is_the_training_transform_of_each_stage():
    cfg = timm.models.get_pretrained_cfg("test_convnext").to_dict()
    cfg.update(input_size=(3, 32, 32), crop_pct=1.0)
    processor = TimmWrapperImageProcessor(pretrained_cfg=cfg)
    staged = staged_train_transform(processor, SketchAugment(hflip=0), ['{"epoch": 1, "vflip": 1.0}'])
    image = Image.fromarray(np.tile(np.arange(32, dtype=np.uint8)[:, None] * 8, (1, 32)), "L")
    upright = staged(image)
    staged.set_epoch(1)
    assert torch.equal(staged(image), torch.flip(upright, dims=[-2]))
    assert staged_train_transform(processor, SketchAugment(), []).__class__.__name__ == "Compose"  # no curriculum


def test_a_yaml_preset_lists_stages_as_objects(tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("output_dir: runs/x\ncurriculum:\n  - {epoch: 0, hflip: 0.5}\n  - {epoch: 4, vflip: 0.5}\n")
    data_args = parse([str(preset), "--precision", "fp32"])[1]
    assert parse_stages(data_args.curriculum) == [{"epoch": 0, "hflip": 0.5}, {"epoch": 4, "vflip": 0.5}]
    with pytest.raises(ValueError, match="unknown"):
        parse([str(preset), "--precision", "fp32", "--curriculum", '{"epoch": 1, "blur": 1}'])
