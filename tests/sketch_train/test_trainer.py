"""SketchTrainer: the final model lands whole (staged, then renamed), and a killed run's temporaries are cleaned."""

import errno
import os

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainingArguments

from sketch_train.trainer import STAGING, SketchTrainer


def trainer(output_dir) -> SketchTrainer:
    args = TrainingArguments(output_dir=str(output_dir), report_to="none", use_cpu=True)
    return SketchTrainer(model=torch.nn.Linear(3, 2), args=args)


def test_the_final_model_is_staged_then_renamed_and_a_failed_save_keeps_whole_files(tmp_path, monkeypatch):
    run = trainer(tmp_path)
    run.save_model()
    first = load_file(tmp_path / "model.safetensors")
    assert not (tmp_path / STAGING).exists() and "training_args.bin" in os.listdir(tmp_path)

    with torch.no_grad():
        run.model.weight.add_(1.0)
    real_replace, calls = os.replace, []

    def disk_full_on_second(source, target):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr("sketch_train.trainer.os.replace", disk_full_on_second)
    with pytest.raises(OSError):
        run.save_model()
    weights = load_file(tmp_path / "model.safetensors")  # whole: the previous model or the new one
    assert torch.equal(weights["weight"], first["weight"]) or torch.equal(weights["weight"], first["weight"] + 1)

    monkeypatch.undo()
    trainer(tmp_path)  # the next run starts: the staging folder the failed save left is removed
    assert not (tmp_path / STAGING).exists()


def test_checkpoints_keep_trainers_own_writes(tmp_path):
    run = trainer(tmp_path)
    run.save_model(str(tmp_path / "checkpoint-1"), _internal_call=True)
    assert (tmp_path / "checkpoint-1" / "model.safetensors").is_file() and not (tmp_path / STAGING).exists()


def test_the_flops_estimate_is_trainers_with_the_parameters_counted_once(tmp_path, monkeypatch):
    from transformers import Trainer

    from sketch_train.arguments import ModelArguments
    from sketch_train.model import build_model

    model, _ = build_model(ModelArguments(model_name_or_path="test_convnext"), ["a", "b"])
    run = SketchTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True))
    inputs = {"pixel_values": torch.zeros(2, 3, 32, 32), "labels": torch.zeros(2, dtype=torch.long)}
    expected = Trainer.floating_point_ops(run, inputs)
    assert expected > 0 and run.floating_point_ops(inputs) == expected
    monkeypatch.setattr(model, "num_parameters", lambda **kwargs: pytest.fail("counted the parameters again"))
    assert run.floating_point_ops(inputs) == expected
