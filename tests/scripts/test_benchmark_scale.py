"""scripts/benchmark_scale.py: every step of the k-fold workflow is timed, the caches are built once and measured."""

import json
from pathlib import Path

import pytest
from conftest import run_script, script_module

from sketch_data.synthetic import write_synthetic_competition


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scale")
    data = write_synthetic_competition(folder / "data", num_classes=4, train_images=96, test_images=12, workers=1)
    code = script_module("benchmark_scale").main([
        "--data_dir", str(data), "--model_name_or_path", "test_convnext", "--image_size", "32", "--quick",
        "--work_dir", str(folder / "work"), "--output", str(folder / "scale.json")])
    assert code == 0
    return folder


@pytest.fixture(scope="module")
def report(work) -> dict:
    return json.loads((work / "scale.json").read_text())


def test_the_first_run_times_each_fold_and_only_the_first_builds_the_caches(report, work):
    first, second = report["first_run"]["folds"]
    assert first["data check"] > 0 and first["features: compute"] > 0 and first["pre-resize cache"] > 0
    assert "features: compute" not in second  # the second fold reads the first fold's features
    for fold in (first, second):
        assert 0 < fold["fixed cost"] < fold["fold total"] and fold["heads + validation"] > 0
        assert fold["TTA prediction"] <= fold["all prediction"]
    assert 0 < second["ensemble"] < report["first_run"]["heads_tta_ensemble_s"]
    # one pre-resize cache for train.csv's images and one for test.csv's, shared by the folds, the rerun and the
    # fine-tuning; one features file per view (train eval, test eval, test flip)
    built = {file.name.split("_0000")[0] for file in (work / "work" / "cache").glob("preresized-*.arrow")}
    assert len(built) == 2 and len(list((work / "work" / "cache").glob("features-*.npy"))) == 3
    assert 0 <= report["first_run"]["oof_accuracy"] <= 1 and 0 <= report["first_run"]["test_accuracy"] <= 1


def test_the_caches_are_measured_on_disk_and_the_rerun_trains_sooner_than_it_ends(report):
    assert all(size > 0 for size in report["cache_MiB"].values()) and len(report["cache_MiB"]) == 2
    assert 0 <= report["rerun"]["first_head_starts_s"] < report["rerun"]["total_s"]


def test_the_encodings_are_compared_and_raw_arrays_are_the_largest(report):
    rows = {row["storage"]: row for row in report["encoding"]}
    assert list(rows) == ["PNG level 6", "PNG level 1", "PNG level 0", "raw uint8"]
    assert rows["raw uint8"]["KiB_per_image"] >= max(row["KiB_per_image"] for row in rows.values()) - 0.2
    assert rows["PNG level 6"]["KiB_per_image"] < rows["raw uint8"]["KiB_per_image"]


def test_full_finetuning_splits_an_epoch_between_loader_and_model(report):
    tuned = report["full_finetune"]
    assert tuned["train_images_per_s"] > 0 and tuned["loader_images_per_s"] > 0
    assert 0 < tuned["loader_share_of_epoch"] and tuned["epoch_s"] > 0


def test_a_folder_without_train_csv_is_one_line_naming_the_command_that_makes_one(tmp_path):
    result = run_script("scripts/benchmark_scale.py", "--data_dir", str(tmp_path / "nothing"))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {tmp_path / 'nothing'} has no train.csv; make one with `python "
                                     f"scripts/make_synthetic_data.py --output_dir {tmp_path / 'nothing'}`.")
