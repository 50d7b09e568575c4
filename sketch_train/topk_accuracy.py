"""Accuracy and top-5 accuracy from logits, as an `evaluate` module loaded by path (no Hub access needed)."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Top-1 and top-k accuracy of class scores against integer labels."
_KWARGS_DESCRIPTION = """
Args:
    predictions: per-example class scores (logits or probabilities), shape (N, C).
    references: integer labels, shape (N,).
    k: the k of top-k accuracy (default 5).
Returns:
    accuracy: fraction whose highest score is the label.
    top{k}_accuracy: fraction whose label is among the k highest scores.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopkAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, k: int = 5):
        scores, labels = np.asarray(predictions), np.asarray(references)
        top_k = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # with fewer than k classes, every class is in the top k
        return {
            "accuracy": float((top_k[:, 0] == labels).mean()),
            f"top{k}_accuracy": float((top_k == labels[:, None]).any(axis=1).mean()),
        }
