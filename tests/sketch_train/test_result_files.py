"""sketch_train/result_files.py: the submission, validation predictions and top-k files, and scoring a submission."""

import numpy as np
import pandas as pd
import pytest

from sketch_train.result_files import (
    submission_accuracy,
    write_eval_predictions,
    write_submission,
    write_top_k,
)

LOGITS = np.array([[0.1, 2.0, 0.3], [3.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
PATHS = ["b.JPEG", "a.JPEG", "c.JPEG"]  # test.csv's order, not sorted


def test_the_submission_has_one_row_per_test_image_in_test_csv_order(tmp_path):
    path = write_submission(PATHS, LOGITS, tmp_path)
    submission = pd.read_csv(path)
    assert list(submission.columns) == ["ID", "image_path", "target"]
    assert submission.values.tolist() == [[0, "b.JPEG", 1], [1, "a.JPEG", 0], [2, "c.JPEG", 2]]
    assert np.array_equal(np.load(tmp_path / "test_logits.npy"), LOGITS)


def test_a_submission_with_a_row_missing_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="2 predictions for 3 test images"):
        write_submission(PATHS, LOGITS[:2], tmp_path)
    assert not (tmp_path / "submission.csv").exists()


def test_validation_predictions_name_label_and_prediction(tmp_path):
    frame = pd.read_csv(write_eval_predictions(PATHS, np.array([1, 1, 2]), LOGITS, ["cat", "dog", "fish"], tmp_path))
    assert frame[["image_path", "label_name", "prediction_name"]].values.tolist() == [
        ["b.JPEG", "dog", "dog"], ["a.JPEG", "dog", "cat"], ["c.JPEG", "fish", "fish"]]
    assert frame["confidence"].between(1 / 3, 1).all()


def test_top_k_lists_labels_by_score_and_ties_in_class_order(tmp_path):
    logits = np.array([[1.0, 1.0, 0.0]])
    frame = pd.read_csv(write_top_k(["x.png"], logits, ["cat", "dog", "fish"], 5, tmp_path / "top.csv"))
    assert list(frame.columns) == ["image_path", "target", "label_1", "score_1", "label_2", "score_2", "label_3",
                                   "score_3"]  # k beyond the classes: all of them
    assert frame.loc[0, ["target", "label_1", "label_2", "label_3"]].tolist() == [0, "cat", "dog", "fish"]
    assert frame.loc[0, "score_1"] == frame.loc[0, "score_2"] > frame.loc[0, "score_3"]


def test_accuracy_scores_against_the_key_and_refuses_other_images(tmp_path):
    submission = write_submission(PATHS, LOGITS, tmp_path)
    key = tmp_path / "solution.csv"
    pd.DataFrame({"ID": [0, 1, 2], "image_path": PATHS, "target": [1, 2, 2]}).to_csv(key, index=False)
    assert submission_accuracy(str(submission), str(key)) == pytest.approx(2 / 3)
    pd.DataFrame({"ID": [0, 1, 2], "image_path": PATHS[::-1], "target": [1, 2, 2]}).to_csv(key, index=False)
    with pytest.raises(ValueError, match="do not list the same image_path values in the same order"):
        submission_accuracy(str(submission), str(key))
