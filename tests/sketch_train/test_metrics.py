"""sketch_train/metrics.py: accuracy and top-5 accuracy, also for the NaN scores of a diverged model."""

import numpy as np
from transformers import EvalPrediction

from sketch_train.metrics import classification_metrics


def test_accuracy_and_top5_accuracy_of_the_scores():
    scores = np.eye(7)[[0, 1, 2, 3]] + np.arange(7) * 0.01  # top-1: 0, 1, 2, 3; then 6, 5, 4, ... by the ramp
    labels = np.array([0, 4, 2, 6])  # right, 5th-placed (in the top 5), right, 2nd-placed
    assert classification_metrics(EvalPrediction(scores, labels)) == {"accuracy": 0.5, "top5_accuracy": 1.0}
    assert classification_metrics(EvalPrediction(scores, np.array([1, 1, 1, 1])))["top5_accuracy"] == 0.25


def test_nan_scores_give_metrics_instead_of_an_error():
    metrics = classification_metrics(EvalPrediction(np.full((3, 4), np.nan), np.array([0, 1, 2])))
    assert set(metrics) == {"accuracy", "top5_accuracy"} and metrics["top5_accuracy"] == 1.0  # 4 classes: all in it
