"""scripts/ensemble.py: a valid submission from runs' logits, exact softmax averaging and voting, the out-of-fold
accuracy over the union of the folds' validation images, scoring against an answer key, and its errors."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_script
from scipy.special import softmax

from scripts.ensemble import main as ensemble
from sketch_train.result_files import submission_accuracy as accuracy

IMAGES = ["0.JPEG", "1.JPEG", "2.JPEG"]


def hand_made_run(folder: Path, probabilities, eval_rows=None) -> Path:
    """A run whose test logits are log(probabilities), so that their softmax is exactly `probabilities`.

    eval_rows: (image_path, label, probabilities) per validation image, for eval_predictions.csv/eval_logits.npy.
    """
    folder.mkdir(parents=True)
    np.save(folder / "test_logits.npy", np.log(np.asarray(probabilities, dtype=np.float32)))
    if eval_rows:
        logits = np.log(np.asarray([p for _, _, p in eval_rows], dtype=np.float32))
        pd.DataFrame({"image_path": [i for i, _, _ in eval_rows], "label": [lab for _, lab, _ in eval_rows],
                      "prediction": logits.argmax(1)}).to_csv(folder / "eval_predictions.csv", index=False)
        np.save(folder / "eval_logits.npy", logits)
    return folder


@pytest.fixture
def test_csv(tmp_path) -> Path:
    path = tmp_path / "test.csv"
    pd.DataFrame({"image_path": IMAGES}).to_csv(path, index=False)
    return path


def run(test_csv: Path, out: Path, *runs: Path, extra: tuple = ()) -> tuple[pd.DataFrame, np.ndarray, dict]:
    assert ensemble(["--runs", *map(str, runs), "--test_csv", str(test_csv), "--output_dir", str(out), *extra]) == 0
    return (pd.read_csv(out / "submission.csv"), np.load(out / "test_logits.npy"),
            json.loads((out / "ensemble_results.json").read_text()))


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


def test_softmax_average_is_exact_and_weighted(tmp_path, test_csv):
    a = [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]
    b = [[0.1, 0.8, 0.1], [0.4, 0.4, 0.2], [0.3, 0.3, 0.4]]
    runs = hand_made_run(tmp_path / "a", a), hand_made_run(tmp_path / "b", b)
    submission, logits, _ = run(test_csv, tmp_path / "equal", *runs)
    assert np.allclose(np.exp(logits), (np.array(a) + np.array(b)) / 2, atol=1e-6)
    assert submission.target.tolist() == [1, 1, 2]  # 0.35/0.55/0.10, 0.30/0.45/0.25, 0.20/0.20/0.60
    submission, logits, _ = run(test_csv, tmp_path / "weighted", *runs, extra=("--weights", "3", "1"))
    assert np.allclose(np.exp(logits), (3 * np.array(a) + np.array(b)) / 4, atol=1e-6)
    assert submission.target.tolist() == [0, 1, 2]  # 0.475/0.425/0.100


def test_majority_vote_with_ties_to_the_higher_mean_probability(tmp_path, test_csv):
    a = [[0.5, 0.4, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]]
    b = [[0.5, 0.4, 0.1], [0.1, 0.5, 0.4], [0.1, 0.2, 0.7]]
    c = [[0.0001, 0.9998, 0.0001], [0.1, 0.2, 0.7], [0.1, 0.8, 0.1]]
    runs = [hand_made_run(tmp_path / name, p) for name, p in zip("abc", (a, b, c))]
    submission, _, _ = run(test_csv, tmp_path / "vote", *runs, extra=("--method", "vote"))
    # image 0: two votes for class 0 beat one confident vote for class 1 (softmax averaging would pick 1);
    # image 1: one vote each, the tie goes to class 2, the highest mean probability (0.4 > 0.333 > 0.267)
    assert submission.target.tolist() == [0, 2, 2]
    submission, _, _ = run(test_csv, tmp_path / "weighted", *runs, extra=("--method", "vote", "--weights", "1", "1", "3"))
    assert submission.target.tolist() == [1, 2, 1]


def test_out_of_fold_accuracy_is_over_the_union_of_the_folds(tmp_path, test_csv):
    probs = [[0.2, 0.8], [0.2, 0.8], [0.2, 0.8]]
    fold0 = hand_made_run(tmp_path / "fold0", probs, [("cat/1.JPEG", 0, [0.9, 0.1]), ("dog/2.JPEG", 1, [0.6, 0.4])])
    fold1 = hand_made_run(tmp_path / "fold1", probs, [("cat/3.JPEG", 0, [0.7, 0.3]), ("dog/4.JPEG", 1, [0.3, 0.7]),
                                                       ("dog/5.JPEG", 1, [0.1, 0.9])])
    _, _, results = run(test_csv, tmp_path / "oof", fold0, fold1)
    assert results["oof_accuracy"] == 4 / 5 and results["oof_images"] == 5
    assert results["oof_images_predicted_by_several_runs"] == 0
    assert results["run_eval_accuracy"] == [0.5, 1.0]


def test_images_several_runs_validated_are_combined(tmp_path, test_csv):
    probs = [[0.2, 0.8]] * 3
    a = hand_made_run(tmp_path / "a", probs, [("x.JPEG", 1, [0.6, 0.4]), ("y.JPEG", 0, [0.9, 0.1])])
    b = hand_made_run(tmp_path / "b", probs, [("x.JPEG", 1, [0.2, 0.8])])
    _, _, results = run(test_csv, tmp_path / "shared", a, b)
    assert results["oof_accuracy"] == 1.0  # x: mean (0.4, 0.6) -> 1, right although run a alone was wrong
    assert (results["oof_images"], results["oof_images_predicted_by_several_runs"]) == (2, 1)


def test_inputs_that_cannot_be_ensembled_are_named(tmp_path, test_csv, capsys):
    a = hand_made_run(tmp_path / "a", [[0.5, 0.5]] * 3)
    short = hand_made_run(tmp_path / "short", [[0.5, 0.5]] * 2)
    assert ensemble(["--runs", str(a), str(short), "--test_csv", str(test_csv), "--output_dir", str(tmp_path / "o")]) == 2
    assert f"error: {short}/test_logits.npy has 2 rows for 3 test images" in capsys.readouterr().err
    assert ensemble(["--runs", str(a), str(tmp_path / "none"), "--test_csv", str(test_csv),
                     "--output_dir", str(tmp_path / "o")]) == 2
    assert f"{tmp_path / 'none' / 'test_logits.npy'} not found" in capsys.readouterr().err
    assert ensemble(["--runs", str(a), "--weights", "1", "2", "--test_csv", str(test_csv),
                     "--output_dir", str(tmp_path / "o")]) == 2
    assert "2 weights for 1 runs" in capsys.readouterr().err
    (a / "config.json").write_text(json.dumps({"label_names": ["cat", "dog"]}))
    b = hand_made_run(tmp_path / "b", [[0.5, 0.5]] * 3)
    (b / "config.json").write_text(json.dumps({"label_names": ["dog", "cat"]}))
    assert ensemble(["--runs", str(a), str(b), "--test_csv", str(test_csv), "--output_dir", str(tmp_path / "o")]) == 2
    assert "have different label_names" in capsys.readouterr().err
