"""A real 2-process data-parallel run (gloo on the CPU) through `accelerate launch`, checked against 1 process.

The data are quickdraw-mini with one training row and one test row left out, so that the validation set (15)
and the test set (19) are odd: with 2 processes the last batch is padded with a duplicate, which the
outputs must not contain. Augmentation is off, so the only randomness is the seeded model init and data order.
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO, run_in_this_process, run_script, tiny_run_flags

CPU_2PROC = REPO / "training_args" / "accelerate" / "cpu_2proc.yaml"
VALIDATION_SIZE, TEST_SIZE = 15, 19

# Both runs take the same 16 images per optimizer step in the same order (accelerate hands process i the
# i-th 8-image slice of the 1-process batch) from the same seeded init, so they train the same model up to
# rounding, as the 2-process run averages gradients in another order. In fp32 (chosen so that every CI CPU
# computes alike; bf16 autocast gave differences up to 0.034) the logits differed by at most 4e-7, while a
# halved learning rate or another data order (--data_seed 1) changed them by 0.44 and 1.0. 1e-4 sits between.
LOGIT_TOLERANCE = 1e-4
# Hence equal accuracy: an argmax could only flip where a top-2 logit gap is under 1e-4; the smallest was 0.1.
ACCURACY_TOLERANCE = 0.0


@pytest.fixture(scope="module")
def odd_csvs(tmp_path_factory, quickdraw_mini):
    folder = tmp_path_factory.mktemp("odd_csvs")
    pd.read_csv(quickdraw_mini / "train.csv").iloc[:-1].to_csv(folder / "train.csv", index=False)
    pd.read_csv(quickdraw_mini / "test.csv").iloc[:TEST_SIZE].to_csv(folder / "test.csv", index=False)
    return folder


def run_flags(data_dir, csvs, output_dir, *extra: str) -> list[str]:
    return tiny_run_flags(
        data_dir, output_dir, "--train_csv", str(csvs / "train.csv"), "--test_csv", str(csvs / "test.csv"),
        "--validation_split", "0.19", "--hflip", "0", "--per_device_eval_batch_size", "4",
        "--eval_strategy", "no", "--load_best_model_at_end", "false", "--precision", "fp32", *extra,
    )


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, quickdraw_mini, odd_csvs):
    output_dir = tmp_path_factory.mktemp("one_process")
    flags = run_flags(quickdraw_mini, odd_csvs, output_dir, "--learning_rate", "0.01")
    # One thread, as accelerate gives each of the 2 processes: the same arithmetic, and no oversubscription.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code, log = run_in_this_process(flags)
    finally:
        torch.set_num_threads(threads)
    assert code == 0, log[-3000:]
    return output_dir


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, quickdraw_mini, odd_csvs):
    """2 x 8 images per step; the preset rate 0.005 is for batch 8, scaled to 0.01 for the effective 16."""
    output_dir = tmp_path_factory.mktemp("two_processes")
    flags = run_flags(quickdraw_mini, odd_csvs, output_dir, "--per_device_train_batch_size", "8",
                      "--learning_rate", "0.005", "--scale_lr_by_batch", "8")
    result = run_script("-m", "accelerate.commands.launch", "--config_file", str(CPU_2PROC),
                        "run_classification.py", *flags)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return output_dir, result.stdout


def test_two_processes_were_used_with_scaled_learning_rate(two_processes):
    _, log = two_processes
    assert "world size 2 |" in log
    assert "batch 8 x 2 processes x 1 accumulation = 16 | learning rate 0.01 (scaled from batch 8)" in log


def test_every_validation_image_is_evaluated_once_with_its_own_label(two_processes, one_process, odd_csvs):
    output_dir, _ = two_processes
    rows = pd.read_csv(output_dir / "eval_predictions.csv")
    assert len(rows) == VALIDATION_SIZE and rows.image_path.is_unique
    assert set(rows.image_path) == set(pd.read_csv(one_process / "eval_predictions.csv").image_path)
    # Labels come from the gathered batches, paths from the dataset: they match only if nothing was reordered.
    targets = pd.read_csv(odd_csvs / "train.csv").set_index("image_path").target
    assert rows.label.tolist() == targets[rows.image_path].tolist()
    assert np.load(output_dir / "eval_logits.npy").shape == (VALIDATION_SIZE, 10)
    # The metric saw these 15 rows, not 16 with the padding duplicate (k/16 is never j/15 for 0 < j < 15).
    accuracy = json.loads((output_dir / "eval_results.json").read_text())["eval_accuracy"]
    assert accuracy == pytest.approx((rows.label == rows.prediction).mean())


def test_submission_has_one_row_per_test_image_in_order(two_processes, odd_csvs):
    output_dir, _ = two_processes
    submission = pd.read_csv(output_dir / "submission.csv")
    assert submission.image_path.tolist() == pd.read_csv(odd_csvs / "test.csv").image_path.tolist()
    assert submission.ID.tolist() == list(range(TEST_SIZE))
    assert np.load(output_dir / "test_logits.npy").shape == (TEST_SIZE, 10)


def test_main_process_saved_checkpoints_and_card(two_processes):
    output_dir, _ = two_processes
    assert sorted(p.name for p in output_dir.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-8"]
    assert (output_dir / "checkpoint-8" / "model.safetensors").is_file()
    assert (output_dir / "model.safetensors").is_file() and (output_dir / "README.md").is_file()


def test_two_processes_train_the_same_model_as_one(two_processes, one_process):
    output_dir, _ = two_processes
    accuracy = [json.loads((d / "eval_results.json").read_text())["eval_accuracy"] for d in (one_process, output_dir)]
    assert abs(accuracy[0] - accuracy[1]) <= ACCURACY_TOLERANCE, accuracy
    for name in ("eval_logits.npy", "test_logits.npy"):  # row by row, so the order matches too
        np.testing.assert_allclose(np.load(output_dir / name), np.load(one_process / name), atol=LOGIT_TOLERANCE)


def test_k_folds_train_one_after_another_in_the_same_two_processes(tmp_path, quickdraw_mini):
    """scripts/train_kfold.py keeps the process group from one fold to the next and ensembles on the main process;
    with a frozen backbone, the main process computes the features once, for both processes and both folds."""
    base, cache = tmp_path / "run", tmp_path / "cache"
    result = run_script("-m", "accelerate.commands.launch", "--config_file", str(CPU_2PROC), "scripts/train_kfold.py",
                        "training_args/demo.yaml", "2", *tiny_run_flags(
                            quickdraw_mini, base, "--num_train_epochs", "1", "--per_device_train_batch_size", "8",
                            "--freeze_backbone", "true", "--tta", "hflip", "--preresize_cache", str(cache)))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "This process computed" not in result.stdout + result.stderr  # only the main process computed them
    assert result.stdout.count("Computed 1 of 1 view(s) of the backbone features of 80 images") == 1
    assert result.stdout.count("Computed 2 of 2 view(s) of the backbone features of 20 images") == 1
    assert result.stdout.count("Reusing cached backbone features of 80 images") == 1  # fold 1 (the main's log)
    assert result.stdout.count("Reusing cached backbone features of 20 images") == 1
    assert len(list(cache.glob("features-*.npy"))) == 3 and len(list(cache.glob("preresized-*.arrow"))) == 2
    assert [line for line in result.stdout.splitlines() if line.startswith("Fold")] == [
        f"Fold {fold} of 2 -> {base}_fold{fold}" for fold in range(2)]  # said once, by the main process
    assert result.stdout.count("world size 2 |") == 2
    oof = json.loads((tmp_path / "run_ensemble" / "ensemble_results.json").read_text())["oof_images"]
    assert oof == len(pd.read_csv(quickdraw_mini / "train.csv"))
