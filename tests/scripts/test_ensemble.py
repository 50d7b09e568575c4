"""scripts/ensemble.py: a valid scored submission from real runs, and a problem with its inputs as one line."""

import json
import shutil

import numpy as np
import pandas as pd
from conftest import run_script
from scipy.special import softmax

from scripts.ensemble import main as ensemble
from sketch_train.result_files import submission_accuracy as accuracy


def test_two_real_runs_give_a_valid_scored_submission(tiny_run, quickdraw_mini, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for name in ("config.json", "submission.csv", "eval_predictions.csv", "eval_logits.npy"):
        shutil.copy(tiny_run / name, other / name)
    first = np.load(tiny_run / "test_logits.npy")
    np.save(other / "test_logits.npy", np.random.default_rng(0).normal(size=first.shape).astype(np.float32))
    out = tmp_path / "ensemble"
    result = run_script("scripts/ensemble.py", "--runs", str(tiny_run), str(other), "--output_dir", str(out),
                        "--test_csv", str(quickdraw_mini / "test.csv"), "--solution", str(quickdraw_mini / "solution.csv"))
    assert result.returncode == 0, result.stderr
    submission, test = pd.read_csv(out / "submission.csv"), pd.read_csv(quickdraw_mini / "test.csv")
    assert list(submission.columns) == ["ID", "image_path", "target"]
    assert submission.image_path.tolist() == test.image_path.tolist() and submission.ID.tolist() == list(range(len(test)))
    mean = (softmax(first, 1) + softmax(np.load(other / "test_logits.npy"), 1)) / 2
    assert submission.target.tolist() == mean.argmax(1).tolist()
    score = accuracy(str(out / "submission.csv"), str(quickdraw_mini / "solution.csv"))
    assert f"Test accuracy against {quickdraw_mini / 'solution.csv'}: {score:.4f}" in result.stdout
    assert json.loads((out / "ensemble_results.json").read_text())["test_accuracy"] == score


def test_inputs_that_cannot_be_ensembled_are_one_error_line(tmp_path, capsys):
    missing = tmp_path / "missing"
    assert ensemble(["--runs", str(missing), "--output_dir", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (f"error: {missing / 'submission.csv'} not found: is {missing} a finished run "
                                       "(with --do_predict for test_logits.npy)?\n")
