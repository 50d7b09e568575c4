"""Every preset parses into the run's arguments, and each says what hardware it expects."""

from pathlib import Path

import pytest

from run_classification import parse

PRESETS = sorted(p for p in (Path(__file__).resolve().parents[2] / "training_args").iterdir()
                 if p.suffix in (".json", ".yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_preset_parses(preset):
    model_args, data_args, training_args = parse([str(preset), "--precision", "fp32"])
    assert training_args.remove_unused_columns is False  # set_transform needs the image column
    assert training_args.output_dir.startswith("runs/")
    assert data_args.train_csv and data_args.test_csv


@pytest.mark.parametrize("preset", [p for p in PRESETS if p.suffix == ".yaml"], ids=lambda p: p.name)
def test_yaml_presets_state_hardware_and_batch_arithmetic(preset):
    text = preset.read_text()
    assert "# Hardware:" in text and "# Batch arithmetic:" in text


def test_seed_preset_keeps_the_models_own_normalisation():
    model_args, _, training_args = parse(["training_args/eva02_large_448_seed.yaml", "--precision", "fp32"])
    assert model_args.image_mean is None and model_args.image_std is None
    assert (training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps) == (16, 8)
    assert (training_args.learning_rate, training_args.weight_decay, training_args.early_stopping_patience) == (1e-4, 0.01, 5)
