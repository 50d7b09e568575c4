"""sketch_train/label_issues.py: cleanlab finds the labels its out-of-fold probabilities contradict, a prior caps them
worst first, folds' probabilities are read back in train.csv's order, and the doctor's own folds keep groups."""

import numpy as np
import pandas as pd
import pytest

from sketch_data import SketchDataError
from sketch_train.label_issues import cross_validated_probabilities, label_and_outlier_issues, run_probabilities

FLIPPED = [0, 20, 40, 60]


def _probabilities(confidence: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Labels of 10 classes x 9 images, four of them wrong, and probabilities that know the true classes, the
    wrong labels' true class with the given confidence each."""
    labels = np.repeat(np.arange(10), 9)
    true = labels.copy()
    true[FLIPPED] = [1, 3, 5, 7]
    probabilities = np.full((len(labels), 10), 0.01)
    probabilities[np.arange(len(labels)), true] = 0.91
    for row, sure in zip(FLIPPED, confidence):
        probabilities[row] = (1 - sure) / 9
        probabilities[row, true[row]] = sure
    return labels, probabilities


def test_the_contradicted_labels_are_found_with_their_likely_class():
    labels, probabilities = _probabilities([0.95, 0.95, 0.95, 0.95])  # surer than of the right labels (0.91)
    features = np.random.default_rng(0).normal(size=(len(labels), 8))
    found = label_and_outlier_issues(labels, probabilities, features)
    issues = found[found["issue"] == "label"]
    assert sorted(issues["row"]) == FLIPPED
    assert issues.set_index("row").loc[FLIPPED, "predicted"].tolist() == [1, 3, 5, 7]


def test_a_prior_on_the_noise_rate_keeps_the_worst_labels_only():
    labels, probabilities = _probabilities([0.99, 0.92, 0.98, 0.93])
    features = np.random.default_rng(0).normal(size=(len(labels), 8))
    found = label_and_outlier_issues(labels, probabilities, features, max_label_issues=2 / len(labels))
    assert sorted(found[found["issue"] == "label"]["row"]) == [0, 40]  # the two the probabilities are surest of


def test_fold_runs_are_read_back_in_train_csv_order(tmp_path):
    paths = ["a.JPEG", "b.JPEG", "c.JPEG"]
    for fold, rows in enumerate([[2], [0, 1]]):
        run = tmp_path / f"kfold_fold{fold}"
        run.mkdir()
        pd.DataFrame({"image_path": [paths[r] for r in rows]}).to_csv(run / "eval_predictions.csv", index=False)
        np.save(run / "eval_logits.npy", np.log(np.eye(2)[[r % 2 for r in rows]] * 0.98 + 0.01))
    probabilities = run_probabilities(str(tmp_path / "kfold"), paths, 2)
    assert probabilities.argmax(1).tolist() == [0, 1, 0]
    with pytest.raises(SketchDataError, match="are in no fold's validation set"):
        run_probabilities(str(tmp_path / "kfold"), [*paths, "d.JPEG"], 2)


def test_the_doctor_s_own_folds_predict_every_image_out_of_fold():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 20)
    features = rng.normal(size=(80, 6)) + 3 * rng.normal(size=(4, 6))[labels]  # classes around their own centres
    probabilities = cross_validated_probabilities(features, labels, np.arange(80), 4, folds=4)
    assert probabilities.shape == (80, 4) and np.allclose(probabilities.sum(1), 1, atol=1e-5)
    assert (probabilities.argmax(1) == labels).mean() > 0.9
