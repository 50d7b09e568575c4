"""Every preset builds the run's arguments, holds only what differs from the defaults, and says what hardware it expects."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from run_classification import parse
from sketch_train.arguments import DataArguments, ModelArguments, SketchTrainingArguments

PRESETS = sorted(p for p in (Path(__file__).resolve().parents[2] / "training_args").iterdir()
                 if p.suffix in (".json", ".yaml"))
# What a preset is about, so named even when it equals the default
NAMED_ANYWAY = {"model_name_or_path"}


def declared_defaults() -> dict:
    defaults = {}
    for arguments in (ModelArguments, DataArguments, SketchTrainingArguments):
        for option in dataclasses.fields(arguments):
            if option.default is not dataclasses.MISSING:
                defaults[option.name] = getattr(option.default, "value", option.default)
            elif option.default_factory is not dataclasses.MISSING:
                defaults[option.name] = option.default_factory()
    return defaults


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_preset_builds_the_arguments(preset):
    model_args, data_args, training_args = parse([str(preset), "--precision", "fp32"])
    assert training_args.remove_unused_columns is False  # set_transform needs the image column
    assert training_args.output_dir.startswith("runs/")
    assert data_args.train_csv and data_args.test_csv
    assert model_args.model_name_or_path and training_args.do_train


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_preset_holds_only_what_differs_from_the_defaults(preset):
    defaults = declared_defaults()
    values = yaml.safe_load(preset.read_text())
    assert set(values) <= set(defaults), f"unknown options {sorted(set(values) - set(defaults))}"
    repeated = [key for key, value in values.items() if key not in NAMED_ANYWAY and value == defaults[key]]
    assert repeated == []


def test_presets_are_yaml_with_comments():
    assert [p.name for p in PRESETS if p.suffix != ".yaml"] == []


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_presets_state_hardware_and_batch_arithmetic(preset):
    text = preset.read_text()
    assert "# Hardware:" in text and "# Batch arithmetic:" in text


def test_seed_preset_keeps_the_models_own_normalisation():
    model_args, _, training_args = parse(["training_args/eva02_large_448_seed.yaml", "--precision", "fp32"])
    assert model_args.image_mean is None and model_args.image_std is None
    assert (training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps) == (16, 8)
    assert (training_args.learning_rate, training_args.weight_decay, training_args.early_stopping_patience) == (1e-4, 0.01, 5)
