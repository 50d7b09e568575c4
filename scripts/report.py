#!/usr/bin/env python
"""Write an evaluation report into a run folder: per-class scores, confused pairs, plots, and report.html.

    python scripts/report.py --run runs/x                                   # validation predictions, or the test set
    python scripts/report.py --run runs/x --solution data/solution.csv      # submission.csv against an answer key
    python scripts/report.py --run runs/x --doctor doctor_out              # also link scripts/doctor.py's page

Where the run's images are comes from its run_summary.json; --data_dir, --train_dir and --test_dir override it.
A run trained with --exclude_images <doctor output>/issues.csv links the doctor's report.html beside it.
A run without a validation split is scored on the test set when solution.csv lies beside its test.csv.
"""

import argparse
import html
import json
import os
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import softmax
from sklearn.metrics import (
    confusion_matrix,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from sketch_data.atomic import atomic_write_csv, atomic_write_text
from sketch_train.model_card import saved_data_location
from sketch_train.report_plots import plot_confusion_top, plot_curves, plot_errors
from sketch_train.sources import label_names_of


class ReportError(Exception):
    """A problem with the report's inputs, shown to the user as one line."""


@dataclass
class Predictions:
    """One row per scored image: where it is, its true and predicted class, and the model's confidence."""

    images: list[Path]
    labels: np.ndarray
    predictions: np.ndarray
    confidences: np.ndarray
    logits: np.ndarray | None
    source: str


def read_csv(path: Path, columns: list[str], hint: str) -> pd.DataFrame:
    if not path.is_file():
        raise ReportError(f"{path} not found; {hint}")
    frame = pd.read_csv(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ReportError(f"{path} has no column {', '.join(missing)}; expected columns {','.join(columns)}.")
    return frame


def optional_logits(path: Path, rows: int) -> np.ndarray | None:
    """Logits saved beside the predictions, if they match them row for row."""
    if not path.is_file():
        return None
    logits = np.load(path)
    if len(logits) != rows:
        raise ReportError(f"{path} has {len(logits)} rows but the predictions have {rows}; rerun the prediction.")
    return logits


def validation_predictions(run: Path, train_dir: Path | None) -> Predictions:
    """The validation predictions that run_classification.py --do_eval saved; images live under the train folder."""
    frame = read_csv(run / "eval_predictions.csv", ["image_path", "label", "prediction", "confidence"],
                     "run run_classification.py with --do_eval, or pass --solution to score submission.csv.")
    if train_dir is None:
        raise ReportError("errors.png needs the run's training images and the run saved no data location "
                          "(run_summary.json): pass --data_dir (the folder holding train/) or --train_dir.")
    return Predictions([train_dir / p for p in frame["image_path"]], frame["label"].to_numpy(),
                       frame["prediction"].to_numpy(), frame["confidence"].to_numpy(dtype=float),
                       optional_logits(run / "eval_logits.npy", len(frame)), f"validation split ({len(frame)} images)")


def test_predictions(run: Path, solution: Path, test_dir: Path) -> Predictions:
    """submission.csv scored against an answer key in the same ID,image_path,target format."""
    submission = read_csv(run / "submission.csv", ["image_path", "target"],
                          "run run_classification.py with --do_predict.")
    key = read_csv(solution, ["image_path", "target"], "--solution must be the answer key (ID,image_path,target).")
    if list(submission["image_path"]) != list(key["image_path"]):
        raise ReportError(f"{run / 'submission.csv'} and {solution} do not list the same image_path values in the "
                          "same order; score a submission against the key of the same test set.")
    predictions = submission["target"].to_numpy()
    logits = optional_logits(run / "test_logits.npy", len(submission))
    confidences = (softmax(logits.astype(np.float64), axis=1)[np.arange(len(predictions)), predictions]
                   if logits is not None else np.full(len(predictions), np.nan))
    return Predictions([test_dir / p for p in submission["image_path"]], key["target"].to_numpy(), predictions,
                       confidences, logits, f"test set against {solution.name} ({len(submission)} images)")


def label_names(run: Path) -> list[str]:
    """Human-readable names saved in the run's config.json (run_classification.py writes `label_names`)."""
    path = run / "config.json"
    if not path.is_file():
        raise ReportError(f"{path} not found; --run must be an output_dir written by run_classification.py.")
    return label_names_of(json.loads(path.read_text()))


def check_classes(predictions: Predictions, num_classes: int) -> None:
    for name, values in (("true label", predictions.labels), ("prediction", predictions.predictions)):
        bad = values[(values < 0) | (values >= num_classes)]
        if len(bad):
            raise ReportError(f"{name} {bad[0]} is not a class of this run (0..{num_classes - 1}); "
                              "were the predictions made by another model?")


def per_class_table(predictions: Predictions, names: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support for every class, in class order."""
    precision, recall, f1, support = precision_recall_fscore_support(
        predictions.labels, predictions.predictions, labels=range(len(names)), zero_division=0)
    return pd.DataFrame({"label": range(len(names)), "name": names, "precision": precision.round(4),
                         "recall": recall.round(4), "f1": f1.round(4), "support": support})


def confused_pairs_table(matrix: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Every (true, predicted) pair of different classes that occurred, most frequent first."""
    off_diagonal = matrix * (1 - np.eye(len(matrix), dtype=matrix.dtype))
    true, predicted = np.nonzero(off_diagonal)
    frame = pd.DataFrame({
        "true_label": true, "true_name": [names[i] for i in true],
        "predicted_label": predicted, "predicted_name": [names[i] for i in predicted],
        "count": matrix[true, predicted], "share_of_true": (matrix[true, predicted] / matrix[true].sum(1)).round(4),
    })
    return frame.sort_values(["count", "share_of_true", "true_label"], ascending=[False, False, True],
                             ignore_index=True)


def most_confused_classes(pairs: pd.DataFrame, k: int, num_classes: int) -> list[int]:
    """Up to k classes taken from the top pairs, in order of appearance so that each pair sits side by side."""
    classes: list[int] = []
    for pair in zip(pairs["true_label"], pairs["predicted_label"]):
        classes += [int(c) for c in pair if c not in classes]
        if len(classes) >= k:
            break
    return classes[:k] or list(range(min(k, num_classes)))


def worst_errors(predictions: Predictions, names: list[str], count: int) -> list[dict]:
    """The misclassified images the model was most sure about."""
    wrong = np.flatnonzero(predictions.labels != predictions.predictions)
    order = wrong[np.argsort(-np.nan_to_num(predictions.confidences[wrong], nan=0.0), kind="stable")][:count]
    missing = [predictions.images[i] for i in order if not predictions.images[i].is_file()]
    if missing:
        raise ReportError(f"image {missing[0]} not found; pass the --data_dir (or --train_dir/--test_dir) "
                          "the run used.")
    return [{"image": predictions.images[i], "true": names[predictions.labels[i]],
             "pred": names[predictions.predictions[i]], "confidence": predictions.confidences[i]} for i in order]


def summary(predictions: Predictions, per_class: pd.DataFrame) -> dict[str, str]:
    scores = {"images": predictions.source,
              "top-1 accuracy": f"{(predictions.labels == predictions.predictions).mean():.4f}"}
    if predictions.logits is not None and predictions.logits.shape[1] > 5:
        top5 = top_k_accuracy_score(predictions.labels, predictions.logits, k=5,
                                    labels=range(predictions.logits.shape[1]))
        scores["top-5 accuracy"] = f"{top5:.4f}"
    seen = per_class[per_class["support"] > 0]
    scores["classes with zero recall"] = f"{int((seen['recall'] == 0).sum())} of {len(seen)} present"
    return scores


def write_html(run: Path, scores: dict[str, str], pairs: pd.DataFrame, per_class: pd.DataFrame, curves: bool,
               doctor: str = "") -> Path:
    """One page tying the tables and pictures together; pictures are linked relatively, so the folder can move."""
    table = lambda frame: frame.to_html(index=False, border=0, classes="table")  # noqa: E731
    lowest = per_class[per_class["support"] > 0].sort_values(["recall", "support"], ascending=[True, False]).head(15)
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in scores.items())
    sections = [
        f"<h1>Evaluation report: {html.escape(run.resolve().name)}</h1><table class='table'>{rows}</table>",
        "<h2>Training curves</h2><img src='curves.png' alt='training curves'>" if curves
        else "<h2>Training curves</h2><p>No trainer_state.json with logged epochs in this run.</p>",
        "<h2>Most confused pairs</h2>" + table(pairs.head(15)) + "<p>All pairs: <a href='confused_pairs.csv'>"
        "confused_pairs.csv</a></p><img src='confusion_top.png' alt='confusion matrix of the most confused classes'>",
        "<h2>Lowest recall</h2>" + table(lowest) + "<p>All classes: <a href='per_class.csv'>per_class.csv</a></p>",
        "<h2>Most confident mistakes</h2><img src='errors.png' alt='misclassified images'>",
    ]
    if doctor:
        sections.insert(1, doctor)
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}img{max-width:100%}"
             ".table{border-collapse:collapse}.table td,.table th{padding:2px 10px;text-align:left;"
             "border-bottom:1px solid #ddd}")
    path = run / "report.html"
    atomic_write_text(path, f"<!doctype html><html><head><meta charset='utf-8'><title>Report {html.escape(run.name)}</title>"
                    f"<style>{style}</style></head><body>{''.join(sections)}</body></html>")
    return path


def write_report(predictions: Predictions, run: Path, names: list[str], top_k: int = 20, num_errors: int = 24,
                 doctor: str = "") -> Path:
    """Write per_class.csv, confused_pairs.csv, the pictures and report.html into `run`; return the HTML page."""
    check_classes(predictions, len(names))
    errors = worst_errors(predictions, names, num_errors)
    matrix = confusion_matrix(predictions.labels, predictions.predictions, labels=range(len(names)))
    per_class = per_class_table(predictions, names)
    pairs = confused_pairs_table(matrix, names)
    atomic_write_csv(per_class, run / "per_class.csv")
    atomic_write_csv(pairs, run / "confused_pairs.csv")
    plot_confusion_top(matrix, most_confused_classes(pairs, top_k, len(names)), names, run / "confusion_top.png")
    plot_errors(errors, run / "errors.png")
    state = run / "trainer_state.json"
    log = json.loads(state.read_text()) if state.is_file() else {}
    if log.get("log_history"):
        plot_curves(log["log_history"], log.get("best_global_step"), run / "curves.png")
    return write_html(run, summary(predictions, per_class), pairs, per_class, bool(log.get("log_history")), doctor)


def load_predictions(args: argparse.Namespace) -> Predictions:
    """The predictions to report on: flags first, then where the run's own saved arguments say its data is."""
    run = Path(args.run)
    if not run.is_dir():
        raise ReportError(f"run folder {run} not found; pass the output_dir of a run_classification.py run.")
    saved = saved_data_location(run)
    data_dir = Path(args.data_dir) if args.data_dir else None
    solution = Path(args.solution) if args.solution else None
    if solution is None and not (run / "eval_predictions.csv").is_file():
        if not (run / "submission.csv").is_file():
            raise ReportError(f"{run} has neither eval_predictions.csv (run_classification.py --do_eval with a "
                              "validation split) nor submission.csv (--do_predict): there is nothing to report on.")
        solution = answer_key_beside(data_dir / "test.csv" if data_dir else saved.get("test_csv"))
        if solution is None:
            raise ReportError(f"{run} has no eval_predictions.csv (it had no validation split) and no answer key "
                              "was found beside its test.csv: pass --solution to score its submission.csv.")
    if solution:
        test_dir = _first_folder(args.test_dir, data_dir and data_dir / "test", saved.get("test_dir"),
                                 solution.parent / "test")
        return test_predictions(run, solution, test_dir)
    return validation_predictions(run, _first_folder(args.train_dir, data_dir and data_dir / "train",
                                                     saved.get("train_dir")))


def doctor_section(run: Path, doctor: str | None) -> str:
    """A link to the data doctor's report.html: the one in --doctor, else the one beside the issues.csv the run
    excluded images from (run_summary.json's exclude_images); empty when there is neither."""
    excluded = saved_data_location(run).get("exclude_images")
    if doctor:
        page = Path(doctor) / "report.html"
        if not page.is_file():
            raise ReportError(f"{page} not found; --doctor must be an output folder of scripts/doctor.py.")
    elif excluded and (Path(excluded).parent / "report.html").is_file():
        page = Path(excluded).parent / "report.html"
    else:
        return ""
    try:  # relative, so that the run and the doctor's folder can move together
        href = urllib.parse.quote(Path(os.path.relpath(page.resolve(), run.resolve())).as_posix())
    except ValueError:  # another drive (Windows)
        href = page.resolve().as_uri()
    note = (f" This run was trained without the images listed in {html.escape(str(excluded))} (exclude_images)."
            if excluded else "")
    return (f"<h2>Data doctor</h2><p>Duplicates, suspect labels and outliers found in the data: "
            f"<a href='{html.escape(href)}'>{html.escape(str(page))}</a>.{note}</p>")


def answer_key_beside(test_csv: str | None) -> Path | None:
    """solution.csv beside the run's test.csv, as the competition layout (and ../shared/data) has it."""
    key = Path(test_csv).parent / "solution.csv" if test_csv else None
    return key if key and key.is_file() else None


def _first_folder(*candidates) -> Path | None:
    return next((Path(c) for c in candidates if c), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="The run's output_dir; the report is written into it.")
    parser.add_argument("--solution", help="Answer key (ID,image_path,target): report on submission.csv instead "
                                           "(default for runs without validation: solution.csv beside test.csv).")
    parser.add_argument("--data_dir", help="The competition folder the run used (holds train/ and test/); default: the "
                                           "one in the run's run_summary.json.")
    parser.add_argument("--train_dir", help="Folder the validation image_path values are relative to.")
    parser.add_argument("--test_dir", help="Folder of the test images (default: the run's, else test/ beside "
                                           "--solution).")
    parser.add_argument("--top_k", type=int, default=20, help="Classes in confusion_top.png.")
    parser.add_argument("--num_errors", type=int, default=24, help="Images in errors.png.")
    parser.add_argument("--doctor", help="Output folder of scripts/doctor.py: link its report.html (default: the one "
                                         "beside the issues.csv the run excluded images from, if any).")
    args = parser.parse_args(argv)
    try:
        predictions = load_predictions(args)
        doctor = doctor_section(Path(args.run), args.doctor)
        page = write_report(predictions, Path(args.run), label_names(Path(args.run)), args.top_k, args.num_errors,
                            doctor)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
