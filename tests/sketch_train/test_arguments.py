"""sketch_train/arguments.py: the options' own checks, the facts derived from them, and the machine defaults they pick."""

import pytest

from sketch_data.transforms import AUGMENT_OPTIONS, SketchAugment
from sketch_train.arguments import DataArguments, SketchTrainingArguments
from sketch_train.machine import auto_num_workers


def training_args(tmp_path, **options) -> SketchTrainingArguments:
    return SketchTrainingArguments(output_dir=str(tmp_path), use_cpu=True, **options)


def test_the_augmentation_is_built_from_the_data_options_with_sketchaugments_defaults():
    assert DataArguments().augmentation() == SketchAugment()
    options = {"hflip": 0.0, "vflip": 0.5, "rotate_degrees": 15.0, "translate": 0.1, "scale": 0.2}
    assert set(options) == set(AUGMENT_OPTIONS)  # every option of SketchAugment is a flag, and no other
    augment = DataArguments(augment="sketch_autoaugment", **options).augmentation()
    assert augment == SketchAugment(policy="sketch_autoaugment", **options)


@pytest.mark.parametrize(("precision", "name"), [("fp32", "fp32"), ("bf16", "bf16")])
def test_the_precision_name_is_what_the_run_trains_in(tmp_path, precision, name):
    assert training_args(tmp_path, precision=precision).precision_name == name


def test_the_effective_batch_counts_accumulation(tmp_path):
    args = training_args(tmp_path, per_device_train_batch_size=16, gradient_accumulation_steps=4)
    assert args.effective_batch_size == 64 == 16 * args.world_size * 4


def test_scale_lr_by_batch_scales_the_rate_linearly(tmp_path):
    args = training_args(tmp_path, learning_rate=1e-3, per_device_train_batch_size=16, gradient_accumulation_steps=4,
                         scale_lr_by_batch=32)
    assert args.learning_rate == pytest.approx(2e-3)


@pytest.mark.parametrize(("options", "message"), [
    ({"hub_token": "hf_secret"}, "--hub_token is not accepted"),
    ({"push_to_hub": True}, "--push_to_hub needs --hub_model_id owner/name"),
    ({"nan_policy": "ignore"}, "nan_policy='ignore': use stop or skip"),
    ({"ema_decay": 1.5}, "ema_decay=1.5: use a value in"),
    ({"precision": "fp8"}, "precision='fp8': use auto, fp32, fp16 or bf16"),
])
def test_bad_options_are_refused_when_parsed(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        training_args(tmp_path, **options)


def test_remove_unused_columns_stays_false(tmp_path, caplog):
    assert training_args(tmp_path, remove_unused_columns=True).remove_unused_columns is False
    assert "Ignoring --remove_unused_columns true" in caplog.text


def test_workers_default_to_auto_and_persist(tmp_path, monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    args = SketchTrainingArguments(output_dir=str(tmp_path))
    assert args.dataloader_num_workers == auto_num_workers(uses_gpu=False) == 2
    assert args.dataloader_persistent_workers and not args.dataloader_pin_memory  # pinning only helps a GPU


def test_zero_workers_load_in_the_training_process_without_persistence(tmp_path):
    args = SketchTrainingArguments(output_dir=str(tmp_path), dataloader_num_workers=0)
    assert (args.dataloader_num_workers, args.dataloader_persistent_workers) == (0, False)


def test_a_negative_worker_count_other_than_auto_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"^dataloader_num_workers=-2: use -1 \(auto\), 0 or more\.$"):
        SketchTrainingArguments(output_dir=str(tmp_path), dataloader_num_workers=-2)
