"""Ensembles of finished runs: their test logits combined by (weighted) softmax mean or majority vote, and the
out-of-fold accuracy over the union of their validation images. scripts/ensemble.py and scripts/train_kfold.py call
`ensemble`."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import softmax

from sketch_data.atomic import atomic_write_text
from sketch_train.result_files import submission_accuracy, write_submission
from sketch_train.sources import label_names_of

METHODS = ("softmax", "vote")
TIE_BREAK = 1e-3  # added to the log vote share of the class a tie goes to: survives float32, below any real gap


class EnsembleError(Exception):
    """A problem with the ensemble's inputs, shown to the user as one line."""


@dataclass
class Votes:
    """Per image: the weighted mean softmax probabilities and the weighted share of runs voting for each class."""

    probabilities: np.ndarray
    vote_shares: np.ndarray

    def scores(self, method: str) -> np.ndarray:
        """Ensemble log-scores whose argmax is the ensemble's prediction."""
        if method == "softmax":
            return np.log(np.clip(self.probabilities, 1e-12, None))
        top = self.vote_shares == self.vote_shares.max(1, keepdims=True)
        winner = np.where(top, self.probabilities, -1.0).argmax(1)
        scores = np.log(np.clip(self.vote_shares, 1e-12, None))
        scores[np.arange(len(scores)), winner] += TIE_BREAK
        return scores


def pool(rows: list[np.ndarray], logits: list[np.ndarray], weights: list[float], num_images: int) -> Votes:
    """Combine runs that each predicted the images `rows[i]` (indices into 0..num_images-1) with `logits[i]`."""
    num_classes = logits[0].shape[1]
    probabilities, votes = np.zeros((num_images, num_classes)), np.zeros((num_images, num_classes))
    total = np.zeros((num_images, 1))
    for index, run_logits, weight in zip(rows, logits, weights):
        np.add.at(probabilities, index, weight * softmax(run_logits.astype(np.float64), axis=1))
        np.add.at(votes, (index, run_logits.argmax(1)), weight)
        np.add.at(total, index, weight)
    if (total == 0).any():
        raise EnsembleError("some images have no prediction from any run with a positive weight.")
    return Votes(probabilities / total, votes / total)


def load_test(runs: list[Path], test_csv: str | None) -> tuple[list[str], list[np.ndarray]]:
    image_paths = _test_image_paths(runs, test_csv)
    logits = []
    for run in runs:
        run_logits = np.load(_file(run, "test_logits.npy"))
        if len(run_logits) != len(image_paths):
            raise EnsembleError(f"{run}/test_logits.npy has {len(run_logits)} rows for {len(image_paths)} test images; "
                                "were all runs predicted on the same test.csv?")
        submission = run / "submission.csv"
        if submission.is_file() and pd.read_csv(submission)["image_path"].tolist() != image_paths:
            raise EnsembleError(f"{submission} lists other test images (or another order) than {test_csv or runs[0]}.")
        logits.append(run_logits)
    return image_paths, logits


def out_of_fold(runs: list[Path], weights: list[float], method: str) -> dict:
    """Accuracy of the ensemble on the union of the runs' validation images (each combined over the runs that saw it)."""
    frames, logits = [], []
    for run in runs:
        frame = pd.read_csv(_file(run, "eval_predictions.csv"))
        run_logits = np.load(_file(run, "eval_logits.npy"))
        if len(run_logits) != len(frame):
            raise EnsembleError(f"{run}: eval_logits.npy has {len(run_logits)} rows, eval_predictions.csv {len(frame)}.")
        frames.append(frame)
        logits.append(run_logits)
    union = pd.concat(frames).drop_duplicates("image_path")
    position = pd.Series(np.arange(len(union)), index=union["image_path"])
    rows = [position[frame["image_path"]].to_numpy() for frame in frames]
    for frame, index in zip(frames, rows):
        if (union["label"].to_numpy()[index] != frame["label"].to_numpy()).any():
            raise EnsembleError("runs disagree on the label of a validation image; were they trained on the same train.csv?")
    predictions = pool(rows, logits, weights, len(union)).scores(method).argmax(1)
    predicted_by = np.bincount(np.concatenate(rows), minlength=len(union))
    return {
        "oof_accuracy": float((predictions == union["label"].to_numpy()).mean()),
        "oof_images": len(union),
        "oof_images_predicted_by_several_runs": int((predicted_by > 1).sum()),
        "run_eval_accuracy": [float((f["label"] == f["prediction"]).mean()) for f in frames],
    }


def ensemble(runs: list[Path], weights: list[float] | None, method: str, test_csv: str | None, output_dir: Path,
             solution: str | None = None) -> dict:
    """Write the ensemble's submission.csv and test_logits.npy; return (and save) its scores."""
    if method not in METHODS:
        raise EnsembleError(f"method {method!r}: use {' or '.join(METHODS)}.")
    weights = list(weights) if weights else [1.0] * len(runs)
    if len(weights) != len(runs) or min(weights) < 0 or sum(weights) <= 0:
        raise EnsembleError(f"{len(weights)} weights for {len(runs)} runs: give one non-negative weight per run.")
    _check_same_labels(runs)
    image_paths, logits = load_test(runs, test_csv)
    scores = pool([np.arange(len(image_paths))] * len(runs), logits, weights, len(image_paths)).scores(method)
    output_dir.mkdir(parents=True, exist_ok=True)
    submission = write_submission(image_paths, scores, output_dir)
    results = {"runs": [str(run) for run in runs], "weights": weights, "method": method, "test_images": len(scores)}
    if all((run / "eval_predictions.csv").is_file() for run in runs):
        results |= out_of_fold(runs, weights, method)
    if solution:
        try:
            results["test_accuracy"] = submission_accuracy(str(submission), solution)
        except (ValueError, KeyError, FileNotFoundError) as error:
            raise EnsembleError(f"cannot score against {solution}: {error}") from None
    atomic_write_text(output_dir / "ensemble_results.json", json.dumps(results, indent=2) + "\n")
    return results


def _test_image_paths(runs: list[Path], test_csv: str | None) -> list[str]:
    source = Path(test_csv) if test_csv else _file(runs[0], "submission.csv")
    if not source.is_file():
        raise EnsembleError(f"{source} not found.")
    frame = pd.read_csv(source)
    if "image_path" not in frame:
        raise EnsembleError(f"{source} has no image_path column.")
    return frame["image_path"].tolist()


def _check_same_labels(runs: list[Path]) -> None:
    named = [(run, label_names_of(json.loads((run / "config.json").read_text())))
             for run in runs if (run / "config.json").is_file()]
    for run, names in named[1:]:
        if names != named[0][1]:
            raise EnsembleError(f"{named[0][0]} and {run} have different label_names: their class indices do not match.")


def _file(run: Path, name: str) -> Path:
    path = run / name
    if not path.is_file():
        raise EnsembleError(f"{path} not found: is {run} a finished run (with --do_predict for test_logits.npy)?")
    return path
