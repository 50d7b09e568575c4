"""The run's metrics, as Trainer's `compute_metrics`: accuracy (the competition's score) and top-5 accuracy."""

import numpy as np
from transformers import EvalPrediction

TOP_K = 5


def classification_metrics(prediction: EvalPrediction) -> dict[str, float]:
    """`accuracy` and `top5_accuracy` of the class scores against the integer labels (Trainer adds `eval_`).

    By sorting, not with scikit-learn's scorers: those refuse the NaN scores of a diverged model, whose evaluation
    the NaN guard needs to see (it is never chosen as the best).
    """
    scores, labels = np.asarray(prediction.predictions), np.asarray(prediction.label_ids)
    top_k = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]  # with at most k classes, every class is in it
    return {"accuracy": float((top_k[:, 0] == labels).mean()),
            f"top{TOP_K}_accuracy": float((top_k == labels[:, None]).any(axis=1).mean())}
