"""Files a run writes for people and later tools: the submission, logits, and validation predictions."""

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import softmax


def write_submission(image_paths: list[str], logits: np.ndarray, output_dir: str | Path) -> Path:
    """Write submission.csv (ID,image_path,target, in test.csv order) and test_logits.npy for ensembling."""
    if len(image_paths) != len(logits):
        raise RuntimeError(f"{len(logits)} predictions for {len(image_paths)} test images; refusing to write a submission.")
    output_dir = Path(output_dir)
    np.save(output_dir / "test_logits.npy", logits.astype(np.float32))
    submission = pd.DataFrame({"ID": np.arange(len(image_paths)), "image_path": image_paths, "target": logits.argmax(1)})
    path = output_dir / "submission.csv"
    submission.to_csv(path, index=False)
    return path


def write_eval_predictions(
    image_paths: list[str], labels: np.ndarray, logits: np.ndarray, label_names: list[str], output_dir: str | Path
) -> Path:
    """Write eval_predictions.csv (one row per validation image) and eval_logits.npy, for reports and ensembles."""
    output_dir = Path(output_dir)
    np.save(output_dir / "eval_logits.npy", logits.astype(np.float32))
    probabilities = softmax(logits.astype(np.float64), axis=1)
    predictions = probabilities.argmax(1)
    frame = pd.DataFrame(
        {
            "image_path": image_paths,
            "label": labels,
            "prediction": predictions,
            "confidence": probabilities.max(1).round(6),
            "label_name": [label_names[i] for i in labels],
            "prediction_name": [label_names[i] for i in predictions],
        }
    )
    path = output_dir / "eval_predictions.csv"
    frame.to_csv(path, index=False)
    return path
