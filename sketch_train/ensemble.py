"""Ensembles of finished runs: their test logits combined by (weighted) softmax mean or majority vote, and the
out-of-fold accuracy over the union of their validation images. scripts/ensemble.py and scripts/train_kfold.py call
`ensemble`."""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import softmax

from sketch_data.atomic import atomic_save_npy, atomic_write_text
from sketch_data.issues_file import train_copies_in_test
from sketch_train.model_card import saved_data_location
from sketch_train.result_files import submission_accuracy, write_submission
from sketch_train.sources import label_names_of

logger = logging.getLogger(__name__)
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


def eval_outputs(run: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """A run's validation images (eval_predictions.csv) and their logits (eval_logits.npy), checked to match."""
    frame = pd.read_csv(_file(run, "eval_predictions.csv"))
    logits = np.load(_file(run, "eval_logits.npy"))
    if len(logits) != len(frame):
        raise EnsembleError(f"{run}: eval_logits.npy has {len(logits)} rows, eval_predictions.csv {len(frame)}.")
    return frame, logits


def out_of_fold(runs: list[Path], weights: list[float], method: str) -> dict:
    """Accuracy of the ensemble on the union of the runs' validation images (each combined over the runs that saw it)."""
    frames, logits = zip(*(eval_outputs(run) for run in runs))
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
             solution: str | None = None, duplicate_labels: str | None = None) -> dict:
    """Write the ensemble's submission.csv and test_logits.npy; return (and save) its scores.

    `duplicate_labels`: a data doctor's issues.csv; a test image it found to be a copy of a training image takes
    that image's train.csv target instead of the ensemble's prediction (the opt-in of --duplicate_labels).
    """
    if method not in METHODS:
        raise EnsembleError(f"method {method!r}: use {' or '.join(METHODS)}.")
    weights = list(weights) if weights else [1.0] * len(runs)
    if len(weights) != len(runs) or min(weights) < 0 or sum(weights) <= 0:
        raise EnsembleError(f"{len(weights)} weights for {len(runs)} runs: give one non-negative weight per run.")
    _check_same_labels(runs)
    image_paths, logits = load_test(runs, test_csv)
    scores = pool([np.arange(len(image_paths))] * len(runs), logits, weights, len(image_paths)).scores(method)
    results = {"runs": [str(run) for run in runs], "weights": weights, "method": method, "test_images": len(scores)}
    predicted = scores.argmax(1)
    output_dir.mkdir(parents=True, exist_ok=True)
    if duplicate_labels:  # test_logits.npy keeps the models' scores, for ensembles of this ensemble
        relabelled, results["duplicate_labels"] = take_train_labels(scores, image_paths, duplicate_labels, runs[0])
        logger.info(duplicate_labels_line(results))
        submission = write_submission(image_paths, relabelled, output_dir)
        atomic_save_npy(output_dir / "test_logits.npy", scores.astype(np.float32))
    else:
        submission = write_submission(image_paths, scores, output_dir)
    if all((run / "eval_predictions.csv").is_file() for run in runs):
        results |= out_of_fold(runs, weights, method)
    if solution:
        try:
            results["test_accuracy"] = submission_accuracy(str(submission), solution)
            if duplicate_labels:  # the same rows, as the ensemble predicted them: the opt-in's effect
                results["duplicate_labels"]["test_accuracy_without"] = float(
                    (predicted == pd.read_csv(solution)["target"].to_numpy()).mean())
        except (ValueError, KeyError, FileNotFoundError) as error:
            raise EnsembleError(f"cannot score against {solution}: {error}") from None
    atomic_write_text(output_dir / "ensemble_results.json", json.dumps(results, indent=2) + "\n")
    return results


def take_train_labels(scores: np.ndarray, image_paths: list[str], issues_csv: str, run: Path):
    """The scores with each test copy of a training drawing set to that drawing's class, and what changed."""
    copies = train_copies_in_test(issues_csv)
    target_of = _class_targets(saved_data_location(run).get("train_csv"), run)
    rows = [(row, target_of[copies[path]]) for row, path in enumerate(image_paths)
            if copies.get(path) in target_of]
    if len(rows) < len(copies):
        logger.warning("--duplicate_labels: %d of the %d test copies in %s are not in this test.csv or name a class "
                       "that train.csv does not have; was the doctor run on this data?", len(copies) - len(rows),
                       len(copies), issues_csv)
    relabelled = scores.copy()
    for row, target in rows:  # the log-probabilities of a certain prediction, as scores() clips them
        relabelled[row] = np.log(1e-12)
        relabelled[row, target] = 0.0
    changed = sum(int(scores[row].argmax() != target) for row, target in rows)
    return relabelled, {"issues_csv": str(issues_csv), "test_images_relabelled": len(rows),
                        "predictions_changed": changed}


def duplicate_labels_line(results: dict) -> str:
    """What --duplicate_labels did, in words, for the scripts' output."""
    done = results["duplicate_labels"]
    return (f"--duplicate_labels: {done['test_images_relabelled']} test image(s) took the class of the training "
            f"drawing they copy; {done['predictions_changed']} prediction(s) changed.")


def _class_targets(train_csv: str | None, run: Path) -> dict[str, int]:
    """class_name -> target, from the train.csv the run was trained on."""
    if not train_csv:
        raise EnsembleError(f"{run}/run_summary.json does not say which train.csv the run used: --duplicate_labels "
                            "needs it for the classes' targets.")
    try:
        frame = pd.read_csv(train_csv, dtype={"class_name": str})
        return {name: int(target) for name, target in zip(frame["class_name"], frame["target"])}
    except (OSError, KeyError, ValueError, pd.errors.ParserError) as error:
        raise EnsembleError(f"{train_csv} (the run's train.csv) does not read: {error!r}.") from None


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
