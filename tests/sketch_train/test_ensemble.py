"""sketch_train/ensemble.py: exact softmax averaging and voting, the out-of-fold accuracy over the union of the
folds' validation images, and the inputs it refuses, by name."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sketch_train.ensemble import EnsembleError, ensemble

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


def run(test_csv: Path, out: Path, *runs: Path, weights=None, method="softmax") -> tuple[pd.DataFrame, np.ndarray, dict]:
    results = ensemble(list(runs), weights, method, str(test_csv), out)
    assert json.loads((out / "ensemble_results.json").read_text()) == results
    return pd.read_csv(out / "submission.csv"), np.load(out / "test_logits.npy"), results


def test_softmax_average_is_exact_and_weighted(tmp_path, test_csv):
    a = [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]
    b = [[0.1, 0.8, 0.1], [0.4, 0.4, 0.2], [0.3, 0.3, 0.4]]
    runs = hand_made_run(tmp_path / "a", a), hand_made_run(tmp_path / "b", b)
    submission, logits, _ = run(test_csv, tmp_path / "equal", *runs)
    assert np.allclose(np.exp(logits), (np.array(a) + np.array(b)) / 2, atol=1e-6)
    assert submission.target.tolist() == [1, 1, 2]  # 0.35/0.55/0.10, 0.30/0.45/0.25, 0.20/0.20/0.60
    submission, logits, _ = run(test_csv, tmp_path / "weighted", *runs, weights=[3, 1])
    assert np.allclose(np.exp(logits), (3 * np.array(a) + np.array(b)) / 4, atol=1e-6)
    assert submission.target.tolist() == [0, 1, 2]  # 0.475/0.425/0.100


def test_majority_vote_with_ties_to_the_higher_mean_probability(tmp_path, test_csv):
    a = [[0.5, 0.4, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]]
    b = [[0.5, 0.4, 0.1], [0.1, 0.5, 0.4], [0.1, 0.2, 0.7]]
    c = [[0.0001, 0.9998, 0.0001], [0.1, 0.2, 0.7], [0.1, 0.8, 0.1]]
    runs = [hand_made_run(tmp_path / name, p) for name, p in zip("abc", (a, b, c))]
    submission, _, _ = run(test_csv, tmp_path / "vote", *runs, method="vote")
    # image 0: two votes for class 0 beat one confident vote for class 1 (softmax averaging would pick 1);
    # image 1: one vote each, the tie goes to class 2, the highest mean probability (0.4 > 0.333 > 0.267)
    assert submission.target.tolist() == [0, 2, 2]
    submission, _, _ = run(test_csv, tmp_path / "weighted", *runs, method="vote", weights=[1, 1, 3])
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


def test_inputs_that_cannot_be_ensembled_are_named(tmp_path, test_csv):
    a = hand_made_run(tmp_path / "a", [[0.5, 0.5]] * 3)
    short = hand_made_run(tmp_path / "short", [[0.5, 0.5]] * 2)
    out = tmp_path / "o"
    with pytest.raises(EnsembleError, match=f"^{short}/test_logits.npy has 2 rows for 3 test images"):
        ensemble([a, short], None, "softmax", str(test_csv), out)
    with pytest.raises(EnsembleError, match=f"^{tmp_path / 'none' / 'test_logits.npy'} not found"):
        ensemble([a, tmp_path / "none"], None, "softmax", str(test_csv), out)
    with pytest.raises(EnsembleError, match="^2 weights for 1 runs"):
        ensemble([a], [1, 2], "softmax", str(test_csv), out)
    (a / "config.json").write_text(json.dumps({"label_names": ["cat", "dog"]}))
    b = hand_made_run(tmp_path / "b", [[0.5, 0.5]] * 3)
    (b / "config.json").write_text(json.dumps({"label_names": ["dog", "cat"]}))
    with pytest.raises(EnsembleError, match="have different label_names"):
        ensemble([a, b], None, "softmax", str(test_csv), out)


def test_duplicate_labels_give_a_test_copy_its_training_image_target_and_say_what_it_changed(tmp_path, test_csv):
    train_csv, solution = tmp_path / "train.csv", tmp_path / "solution.csv"
    pd.DataFrame({"class_name": ["a", "b", "c"], "image_path": ["a/x.JPEG", "b/y.JPEG", "c/z.JPEG"],
                  "target": [0, 1, 2]}).to_csv(train_csv, index=False)
    pd.DataFrame({"ID": [0, 1, 2], "image_path": IMAGES, "target": [2, 1, 1]}).to_csv(solution, index=False)
    issues = tmp_path / "issues.csv"
    pd.DataFrame({"image_path": ["test/0.JPEG", "test/1.JPEG", "train/a/x.JPEG"],
                  "issue": ["train_test_duplicate", "train_test_duplicate", "label"], "score": [0.9, 0.8, 0.1],
                  "related_image_path": ["train/c/z.JPEG", "train/b/y.JPEG", ""],
                  "suggested_label": ["c", "b", "b"]}).to_csv(issues, index=False)
    fold = hand_made_run(tmp_path / "fold0", [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    (fold / "run_summary.json").write_text(json.dumps({"data": {"train_csv": str(train_csv)}}))

    results = ensemble([fold], None, "softmax", str(test_csv), tmp_path / "out", str(solution), str(issues))

    submission = pd.read_csv(tmp_path / "out" / "submission.csv")
    assert submission["target"].tolist() == [2, 1, 0]  # 0.JPEG copies c/z (target 2); 1.JPEG was already right
    assert results["duplicate_labels"] == {"issues_csv": str(issues), "test_images_relabelled": 2,
                                           "predictions_changed": 1, "test_accuracy_without": 1 / 3}
    assert results["test_accuracy"] == pytest.approx(2 / 3)


def test_duplicate_labels_need_the_run_to_say_which_train_csv_it_used(tmp_path, test_csv):
    issues = tmp_path / "issues.csv"
    pd.DataFrame({"image_path": ["test/0.JPEG"], "issue": ["train_test_duplicate"], "score": [0.9],
                  "related_image_path": ["train/c/z.JPEG"], "suggested_label": ["c"]}).to_csv(issues, index=False)
    fold = hand_made_run(tmp_path / "fold0", [[0.7, 0.2, 0.1]] * 3)
    with pytest.raises(EnsembleError, match="run_summary.json does not say which train.csv"):
        ensemble([fold], None, "softmax", str(test_csv), tmp_path / "out", duplicate_labels=str(issues))
