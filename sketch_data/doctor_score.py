"""Score a data doctor's issues.csv against the truth a noisy copy injected (sketch_data/noisy_copy.py).

Duplicates are scored by clusters, not by exact pairs: the doctor relates each cluster member to the cluster's
representative, which need not be the image the copy was made from (a copy may be related to another copy of the
same source). So an injected pair (copy, source) is found when both lie in one connected component of the doctor's
duplicate rows, and a doctor row is right when both its images lie in one component of the injected pairs.
TP and FP count the doctor's rows, FN the injected pairs that were missed; recall = found pairs / injected pairs.
Duplicates that the source set held already count as false positives, so precision is a lower bound; duplicate rows
that relate an image to nothing or to itself are left out.

Label issues are scored per image: the truth is every train image whose given label differs from its drawing's
(flipped images and cross-class copies), and for the hits, whether the suggested label is the true one.
"""

import glob
import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from .issues_file import DUPLICATE_ISSUES
from .noisy_copy import INJECTED_COLUMNS

DUPLICATE_KINDS = ("duplicate", "cross_class_duplicate", "train_test_duplicate")
ISSUES_COLUMNS = ("image_path", "issue", "related_image_path", "suggested_label")


def read_table(path: str | Path, columns: Iterable[str]) -> pd.DataFrame:
    """The CSV as strings (empty cells as ""); ValueError naming the file when it is missing or lacks a column."""
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such file.")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a readable CSV ({error}).") from None
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}.")
    return frame


def components(edges: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Each image named in `edges` mapped to its component's root (union-find)."""
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b in edges:
        parent[root(a)] = root(b)
    return {node: root(node) for node in parent}


def together(roots: dict[str, str], a: str, b: str) -> bool:
    return a == b or (a in roots and b in roots and roots[a] == roots[b])


def ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else math.nan


def score_duplicates(issues: pd.DataFrame, injected: pd.DataFrame) -> dict:
    truth = injected[injected["kind"].isin(DUPLICATE_KINDS)]
    related = (issues["related_image_path"] != "") & (issues["related_image_path"] != issues["image_path"])
    predicted = issues[issues["issue"].isin(DUPLICATE_ISSUES) & related]
    true_pairs = list(zip(truth["image_path"], truth["related_image_path"]))
    predicted_pairs = list(zip(predicted["image_path"], predicted["related_image_path"]))
    true_roots, predicted_roots = components(true_pairs), components(predicted_pairs)
    found = pd.Series([together(predicted_roots, a, b) for a, b in true_pairs], index=truth.index, dtype=bool)
    right = pd.Series([together(true_roots, a, b) for a, b in predicted_pairs], index=predicted.index, dtype=bool)
    tp, fp, fn = int(right.sum()), int((~right).sum()), int((~found).sum())
    by_kind = {kind: found[truth["kind"] == kind] for kind in DUPLICATE_KINDS}
    by_issue = {issue: right[predicted["issue"] == issue] for issue in DUPLICATE_ISSUES}
    return {
        "precision": ratio(tp, tp + fp), "recall": ratio(int(found.sum()), len(found)), "tp": tp, "fp": fp, "fn": fn,
        "recall_by_kind": {kind: {"recall": ratio(int(hits.sum()), len(hits)), "found": int(hits.sum()),
                                  "fn": int((~hits).sum())} for kind, hits in by_kind.items()},
        "precision_by_issue": {issue: {"precision": ratio(int(hits.sum()), len(hits)), "tp": int(hits.sum()),
                                       "fp": int((~hits).sum())} for issue, hits in by_issue.items()},
    }


def score_labels(issues: pd.DataFrame, injected: pd.DataFrame) -> dict:
    wrong = injected[(injected["given_label"] != "") & (injected["given_label"] != injected["true_label"])]
    truth = dict(zip(wrong["image_path"], wrong["true_label"]))
    flagged = issues[issues["issue"] == "label"].drop_duplicates("image_path")
    suggested = dict(zip(flagged["image_path"], flagged["suggested_label"]))
    hits = [path for path in suggested if path in truth]
    tp, fp, fn = len(hits), len(suggested) - len(hits), len(truth) - len(hits)
    right = sum(suggested[path] == truth[path] for path in hits)
    return {"precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn), "tp": tp, "fp": fp, "fn": fn,
            "suggested_label_accuracy": ratio(right, tp)}


def oof_accuracies(run_prefix: str, injected: pd.DataFrame) -> dict:
    """Out-of-fold accuracy of a scripts/train_kfold.py run on the noisy copy, against the labels it was given and
    against the drawings' true labels (which test accuracy, on clean test labels, should be compared with)."""
    folds = [Path(run) for run in sorted(glob.glob(f"{glob.escape(run_prefix)}_fold*"))]
    if not folds:
        raise ValueError(f"{run_prefix}_fold0: no such folder; pass the --output_dir of scripts/train_kfold.py.")
    columns = ("image_path", "label_name", "prediction_name")
    oof = pd.concat([read_table(run / "eval_predictions.csv", columns) for run in folds]).drop_duplicates("image_path")
    truth = dict(zip(injected["image_path"].str.removeprefix("train/"), injected["true_label"]))
    true = [truth.get(path) or given for path, given in zip(oof["image_path"], oof["label_name"])]
    return {"images": len(oof), "against_given_labels": float((oof["prediction_name"] == oof["label_name"]).mean()),
            "against_true_labels": float((oof["prediction_name"] == pd.Series(true, index=oof.index)).mean())}


def score_doctor(issues_csv: str | Path, injected_csv: str | Path) -> dict:
    issues, injected = read_table(issues_csv, ISSUES_COLUMNS), read_table(injected_csv, INJECTED_COLUMNS)
    return {"duplicates": score_duplicates(issues, injected), "label": score_labels(issues, injected)}


def markdown_table(scores: dict) -> str:
    """detector | precision | recall | TP | FP | FN, with a row per injected kind (recall) and per duplicate issue
    the doctor wrote (precision)."""
    def number(value: float) -> str:
        return "–" if math.isnan(value) else f"{value:.3f}"

    duplicates, labels = scores["duplicates"], scores["label"]
    lines = ["| detector | precision | recall | TP | FP | FN |", "|---|---|---|---|---|---|"]
    for name, row in (("duplicates (all)", duplicates), ("label", labels)):
        lines.append(f"| {name} | {number(row['precision'])} | {number(row['recall'])} | {row['tp']} | {row['fp']} "
                     f"| {row['fn']} |")
    for kind, row in duplicates["recall_by_kind"].items():
        lines.append(f"| injected {kind} | | {number(row['recall'])} | {row['found']} | | {row['fn']} |")
    for issue, row in duplicates["precision_by_issue"].items():
        if row["tp"] + row["fp"]:
            lines.append(f"| predicted {issue} | {number(row['precision'])} | | {row['tp']} | {row['fp']} | |")
    lines.append(f"\nSuggested label right for {number(labels['suggested_label_accuracy'])} of the {labels['tp']} "
                 "label issues found.")
    return "\n".join(lines)
