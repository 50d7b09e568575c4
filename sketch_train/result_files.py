"""Files a run writes for people and later tools: the submission, logits, and validation predictions.

Each is written atomically (sketch_data/atomic.py): a run killed mid-write leaves the previous file or none.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import softmax

from sketch_data.atomic import atomic_save_npy, atomic_write_csv


def write_submission(image_paths: list[str], logits: np.ndarray, output_dir: str | Path) -> Path:
    """Write submission.csv (ID,image_path,target, in test.csv order) and test_logits.npy for ensembling."""
    if len(image_paths) != len(logits):
        raise RuntimeError(f"{len(logits)} predictions for {len(image_paths)} test images; refusing to write a submission.")
    output_dir = Path(output_dir)
    atomic_save_npy(output_dir / "test_logits.npy", logits.astype(np.float32))
    submission = pd.DataFrame({"ID": np.arange(len(image_paths)), "image_path": image_paths, "target": logits.argmax(1)})
    path = output_dir / "submission.csv"
    atomic_write_csv(submission, path)
    return path


def write_eval_predictions(
    image_paths: list[str], labels: np.ndarray, logits: np.ndarray, label_names: list[str], output_dir: str | Path
) -> Path:
    """Write eval_predictions.csv (one row per validation image) and eval_logits.npy, for reports and ensembles."""
    output_dir = Path(output_dir)
    atomic_save_npy(output_dir / "eval_logits.npy", logits.astype(np.float32))
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
    atomic_write_csv(frame, path)
    return path


def write_top_k(image_paths: list[str], logits: np.ndarray, label_names: list[str], k: int, path: str | Path) -> Path:
    """Write one row per image: image_path, target (the top-1 class id), then label_i and score_i for the top k."""
    probabilities = softmax(logits.astype(np.float64), axis=1)
    k = min(k, probabilities.shape[1])
    # Highest first; equal scores keep class order, as the submission's argmax does.
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    columns = {"image_path": image_paths, "target": order[:, 0]}
    for rank in range(k):
        columns[f"label_{rank + 1}"] = [label_names[i] for i in order[:, rank]]
        columns[f"score_{rank + 1}"] = np.take_along_axis(probabilities, order[:, rank:rank + 1], axis=1)[:, 0].round(7)
    atomic_write_csv(pd.DataFrame(columns), path)
    return Path(path)


def submission_accuracy(submission_csv: str, solution_csv: str) -> float:
    """Fraction of test images whose target matches the key; the rows must name the same images in the same order."""
    submission, solution = pd.read_csv(submission_csv), pd.read_csv(solution_csv)
    if list(submission["image_path"]) != list(solution["image_path"]):
        raise ValueError(f"{submission_csv} and {solution_csv} do not list the same image_path values in the same order.")
    return float((submission["target"].to_numpy() == solution["target"].to_numpy()).mean())
