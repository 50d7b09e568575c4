#!/usr/bin/env python
"""The data doctor: copies of drawings (within a class, across classes, into the test set), mislabelled images,
outliers and image-quality problems, in a data set in the competition layout.

    python scripts/doctor.py --data_dir data --output_dir runs/doctor --model_name_or_path timm/convnext_base.fb_in22k_ft_in1k
    python scripts/doctor.py --train_dir D/train --train_csv D/train.csv [--test_dir D/test --test_csv D/test.csv] \\
        [--oof runs/kfold] --output_dir OUT

It writes OUT/issues.csv (image_path,issue,score,related_image_path,suggested_label; paths prefixed train/ or
test/), OUT/report.html (a gallery per issue) and OUT/doctor_summary.json (counts and each step's time). It
changes nothing: training acts on it only when asked, with --group_duplicates true, --exclude_images
OUT/issues.csv [--exclude_issues ...] and, at the ensemble, --duplicate_labels OUT/issues.csv (docs/data.md).

Label issues come from out-of-fold probabilities: the folds of finished scripts/train_kfold.py runs (--oof, their
--output_dir; several are averaged), or else a quick 5-fold linear head on the frozen backbone's features (the
feature cache of frozen-head runs of the same model, size and precision). cleanlab decides how many labels are
wrong; with weak probabilities it counts far too many (the doctor warns), and --max_label_issues caps them at a
share of the images you expect, worst first.
"""

import argparse
import json
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sketch_data import SketchDataError, load_sketch_dataset
from sketch_data.atomic import atomic_write_csv, atomic_write_text
from sketch_data.cache import source_files
from sketch_data.doctor_report import write_doctor_report
from sketch_data.duplicates import MAX_DISTANCE, MIN_CORRELATION, Copies, clusters_of, find_copies, fingerprints_of
from sketch_data.issues_file import COLUMNS, TEST, TRAIN, issue_order, worst_first
from sketch_data.quality import quality_issues
from sketch_train.arguments import ModelArguments, SketchTrainingArguments
from sketch_train.ensemble import EnsembleError
from sketch_train.features import backbone_features, image_paths
from sketch_train.label_issues import (
    cross_validated_probabilities,
    fold_runs,
    label_and_outlier_issues,
    run_probabilities,
)
from sketch_train.model import ModelSourceError, check_model_source

EXACT = 0.95  # thumbnail correlation from which a copy is a `duplicate` (a flip, rotation or re-encode) rather
# than a `near_duplicate` (rescaled, or re-encoded harder): injected copies scored 0.94-1.0 (docs/data.md)
MANY_LABEL_ISSUES = 0.15  # a flagged share above which the probabilities, not the labels, are the likely problem


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", help="A folder in the competition layout; sets the four paths below.")
    parser.add_argument("--train_dir")
    parser.add_argument("--train_csv")
    parser.add_argument("--test_dir")
    parser.add_argument("--test_csv", help="Without it, no train/test copies are looked for.")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--model_name_or_path", default=ModelArguments.model_name_or_path,
                        help="The pretrained backbone whose features find label issues and outliers (any "
                             "run_classification.py model source).")
    parser.add_argument("--image_size", type=int, help="As run_classification.py's: the same features as its runs.")
    parser.add_argument("--crop_pct", type=float)
    parser.add_argument("--precision", default="auto", help="auto, fp32, fp16 or bf16, as run_classification.py's.")
    parser.add_argument("--batch_size", type=int, default=64, help="Images per batch through the backbone.")
    parser.add_argument("--oof", nargs="+", help="The --output_dir of finished scripts/train_kfold.py runs: their "
                                                 "folds' out-of-fold probabilities (averaged over the runs) find the "
                                                 "label issues.")
    parser.add_argument("--folds", type=int, default=5, choices=range(2, 21), metavar="2..20",
                        help="Folds of the doctor's own linear head (without --oof).")
    parser.add_argument("--max_label_issues", type=float, help="Keep at most this fraction of the training images as "
                        "label issues, the lowest in cleanlab's label quality: a prior on the noise rate, for when "
                        "the doctor warns that cleanlab's own count is not to be trusted (e.g. 0.1).")
    parser.add_argument("--skip", nargs="*", default=[], choices=["labels", "quality"],
                        help="Steps to leave out: labels (no model at all), quality (no cleanvision).")
    parser.add_argument("--bad_images", default="error", choices=["error", "skip"])
    parser.add_argument("--max_distance", type=int, default=MAX_DISTANCE, help="Hash bits a copy may differ by.")
    parser.add_argument("--min_correlation", type=float, default=MIN_CORRELATION,
                        help="Thumbnail correlation a copy must reach.")
    args = parser.parse_args(argv)
    if args.data_dir:  # its test set only where it has one
        root = Path(args.data_dir)
        args.train_dir, args.train_csv = args.train_dir or str(root / "train"), args.train_csv or str(root / "train.csv")
        if (root / "test.csv").is_file():
            args.test_dir, args.test_csv = args.test_dir or str(root / "test"), args.test_csv or str(root / "test.csv")
    if not (args.train_dir and args.train_csv):
        parser.error("give --data_dir, or --train_dir and --train_csv")
    if args.max_label_issues is not None and not 0 < args.max_label_issues <= 1:
        parser.error(f"--max_label_issues {args.max_label_issues}: give a fraction of the training images, in (0, 1]")
    try:  # the run's own checks of --precision, before any work
        args.training_args = SketchTrainingArguments(output_dir=args.output_dir, precision=args.precision,
                                                     per_device_eval_batch_size=args.batch_size, report_to="none")
    except ValueError as error:
        parser.error(str(error))
    return args


class Steps:
    """Times each step of the examination, for the summary."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 1)


@dataclass
class Examined:
    """The data as the doctor reads it: each split's images and prefixed paths, the labels and class names."""

    splits: dict
    paths: dict[str, list[str]]
    labels: np.ndarray
    class_names: list[str]


def examine(args: argparse.Namespace) -> pd.DataFrame:
    """Find every issue, write issues.csv, report.html and doctor_summary.json; return the issues."""
    output = Path(args.output_dir)
    model_args = ModelArguments(model_name_or_path=args.model_name_or_path, image_size=args.image_size,
                                crop_pct=args.crop_pct, freeze_backbone=True)
    if "labels" not in args.skip:  # a model or run that cannot be had stops here, before any work
        for run in args.oof or []:
            fold_runs(run)
        check_model_source(model_args)
    output.mkdir(parents=True, exist_ok=True)
    steps, summary = Steps(), {}

    with steps("reading and checking the images"):  # as a training run reads and checks them
        data = read_data(args)
    with steps("finding copies"):
        copies = find_all_copies(data, args.max_distance, args.min_correlation)
    clusters, found, probabilities = copies.clusters, [], None
    if "labels" not in args.skip:
        found, probabilities = label_rows(data, clusters, model_args, args, steps, summary)
    found = copy_rows(copies, data, probabilities) + found
    if "quality" not in args.skip:
        with steps("image quality (cleanvision)"):
            found += quality_rows(data)

    issues = worst_first(pd.DataFrame(found, columns=COLUMNS))
    atomic_write_csv(issues, output / "issues.csv")
    summary = {"train images": len(data.labels), "test images": len(data.paths.get("test", [])),
               "duplicate clusters in train": int((np.bincount(clusters) > 1).sum()),
               **{f"issue {issue}": int((issues["issue"] == issue).sum()) for issue in issue_order(issues["issue"])},
               **summary, "copies: max_distance, min_correlation": [args.max_distance, args.min_correlation],
               **{f"seconds: {name}": seconds for name, seconds in steps.seconds.items()}}
    write_doctor_report(issues, {"train": Path(args.train_dir), "test": Path(args.test_dir or ".")},
                        dict(zip(data.paths["train"], (data.class_names[label] for label in data.labels))),
                        output / "report.html", summary={key: str(value) for key, value in summary.items()})
    atomic_write_text(output / "doctor_summary.json", json.dumps(summary, indent=2) + "\n")
    print("\n".join(f"{key}: {value}" for key, value in summary.items()))
    print(f"Wrote {output / 'issues.csv'} ({len(issues)} rows) and {output / 'report.html'}")
    return issues


def read_data(args: argparse.Namespace) -> Examined:
    data = load_sketch_dataset(args.train_dir, args.train_csv, args.test_dir, args.test_csv, validation_split=0.0,
                               bad_images=args.bad_images)
    splits = dict(data.splits)
    paths = {name: [prefix + path for path in image_paths(splits[name])]
             for name, prefix in (("train", TRAIN), ("test", TEST)) if name in splits}
    return Examined(splits, paths, np.array(splits["train"]["label"][:]), data.class_names)


@dataclass
class AllCopies:
    """Copies within train.csv, from test.csv into it (None without a test set), and each training image's cluster."""

    within: Copies
    between: Copies | None
    clusters: np.ndarray


def find_all_copies(data: Examined, max_distance: int, min_correlation: float) -> AllCopies:
    prints = {name: fingerprints_of(source_files(split), desc=f"Fingerprinting {name} images")
              for name, split in data.splits.items()}
    within = find_copies(prints["train"], max_distance=max_distance, min_correlation=min_correlation)
    between = (find_copies(prints["test"], prints["train"], max_distance, min_correlation) if "test" in prints
               else None)
    return AllCopies(within, between, clusters_of(within, len(data.labels)))


def copy_rows(copies: AllCopies, data: Examined, probabilities: np.ndarray | None) -> list[dict]:
    """The rows of copies within train.csv and from it into test.csv."""
    rows = within_train_rows(copies.within, copies.clusters, data, probabilities)
    if copies.between is not None:
        rows += train_test_rows(copies.between, copies.clusters, data, probabilities)
    return rows


def label_rows(data: Examined, clusters: np.ndarray, model_args: ModelArguments, args: argparse.Namespace,
               steps: Steps, summary: dict) -> tuple[list[dict], np.ndarray]:
    """Label issues and outliers (cleanlab on out-of-fold probabilities and the backbone's features), and the
    probabilities."""
    with steps("backbone features"):
        features = backbone_features(model_args, {"train": data.splits["train"]}, args.training_args)["train"]
    with steps("out-of-fold probabilities"):
        classes = len(data.class_names)
        probabilities = (np.mean([run_probabilities(run, image_paths(data.splits["train"]), classes)
                                  for run in args.oof], axis=0) if args.oof else
                         cross_validated_probabilities(features, data.labels, clusters, classes, args.folds))
    with steps("label issues and outliers (cleanlab)"):
        verdicts = label_and_outlier_issues(data.labels, probabilities, features, args.max_label_issues)
    summary["out-of-fold accuracy"] = round(float((probabilities.argmax(1) == data.labels).mean()), 4)
    flagged = int((verdicts["issue"] == "label").sum())
    if flagged > MANY_LABEL_ISSUES * len(data.labels):
        print(f"warning: cleanlab calls {flagged} of {len(data.labels)} labels wrong at an out-of-fold accuracy of "
              f"{summary['out-of-fold accuracy']:.2f}: probabilities this weak make many false alarms "
              "(docs/data.md). Look at report.html before excluding them; pass --oof with a fine-tuned "
              "scripts/train_kfold.py run, or --max_label_issues with the share of wrong labels you expect.")
    return [issue_row(data.paths["train"][v.row], v.issue, v.score,
                      suggested=data.class_names[v.predicted] if v.issue == "label" else "")
            for v in verdicts.itertuples()], probabilities


def quality_rows(data: Examined) -> list[dict]:
    files = [file for split in data.splits.values() for file in source_files(split)]
    paths = [path for name in data.splits for path in data.paths[name]]
    return [issue_row(paths[q.row], q.issue, q.score) for q in quality_issues(files).itertuples()]


def within_train_rows(copies: Copies, clusters: np.ndarray, data: Examined,
                      probabilities: np.ndarray | None = None) -> list[dict]:
    """A cluster of one class: a row for each image but its first, related to its closest copy. A cluster across
    classes: a row for every image, related to its closest copy of another class, with the cluster's class suggested
    to each (its own class for the images to keep) where one can be told (_cluster_class)."""
    score = _pair_scores(copies)
    rows = []
    for members in _clusters(clusters):
        if len(set(data.labels[members])) == 1:
            for image in members[1:]:
                partner = max(score[image], key=score[image].get)
                rows.append(issue_row(data.paths["train"][image], "duplicate" if score[image][partner] >= EXACT
                                      else "near_duplicate", score[image][partner], data.paths["train"][partner]))
            continue
        decided = _cluster_class(members, data.labels, probabilities)
        for image in members:
            others = {m: s for m, s in score[image].items() if data.labels[m] != data.labels[image]}
            partner = max(others, key=others.get) if others else next(
                m for m in members if data.labels[m] != data.labels[image])  # a copy of a copy of another class
            rows.append(issue_row(data.paths["train"][image], "cross_class_duplicate", others.get(partner, np.nan),
                                  data.paths["train"][partner], data.class_names[decided] if decided is not None
                                  else ""))
    return rows


def train_test_rows(between: Copies, clusters: np.ndarray, data: Examined,
                    probabilities: np.ndarray | None = None) -> list[dict]:
    """A row for each test image that copies a training image: related to its closest copy, with the class of that
    copy's cluster suggested where one can be told (_cluster_class)."""
    best = {}
    for (test, train), score in zip(between.pairs, between.scores):
        if score > best.get(test, (None, -1.0))[1]:
            best[test] = (train, score)
    rows = []
    for test, (train, score) in sorted(best.items()):
        decided = _cluster_class(np.flatnonzero(clusters == clusters[train]), data.labels, probabilities)
        rows.append(issue_row(data.paths["test"][test], "train_test_duplicate", score, data.paths["train"][train],
                              data.class_names[decided] if decided is not None else ""))
    return rows


def issue_row(image: str, issue: str, score: float, related: str = "", suggested: str = "") -> dict:
    return {"image_path": image, "issue": issue, "score": round(float(score), 4), "related_image_path": related,
            "suggested_label": suggested}


def _pair_scores(copies: Copies) -> dict[int, dict[int, float]]:
    """Each image's copies and the score of each pair."""
    scores: dict[int, dict[int, float]] = {}
    for (a, b), score in zip(copies.pairs.tolist(), copies.scores.tolist()):
        scores.setdefault(a, {})[b] = score
        scores.setdefault(b, {})[a] = score
    return scores


def _clusters(clusters: np.ndarray) -> list[np.ndarray]:
    """The clusters of two or more images, each as sorted indices."""
    order = np.argsort(clusters, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(clusters[order])) + 1)
    return [group for group in groups if len(group) > 1]


def _cluster_class(members: np.ndarray, labels: np.ndarray, probabilities: np.ndarray | None) -> int | None:
    """The class of a cluster of copies: the label more than half of its images have; else, with out-of-fold
    probabilities, the one of its labels they make most likely, summed over its images (a pair across two classes
    has no majority); else None."""
    counts = np.bincount(labels[members])
    if counts.max() * 2 > len(members):
        return int(counts.argmax())
    if probabilities is None:
        return None
    given = np.unique(labels[members])
    return int(given[probabilities[members][:, given].sum(axis=0).argmax()])


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        examine(args)
    except (SketchDataError, ModelSourceError, EnsembleError) as error:  # EnsembleError: an --oof fold's files
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
