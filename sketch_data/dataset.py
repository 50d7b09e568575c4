"""Turn the competition's CSV files into a `datasets.DatasetDict`, like an `imagefolder` dataset."""

import glob
import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import PIL.Image
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value

from .csv_files import SketchDataError, read_test_csv, read_train_csv
from .duplicates import duplicate_groups
from .images import scan_images
from .labels import readable_names
from .splits import split_indices

logger = logging.getLogger(__name__)
LABELLED = ("train", "validation")  # the splits of train.csv's images
IMAGE_EXTENSIONS = set(PIL.Image.registered_extensions())  # every format Pillow reads, as '.jpeg', '.png', ...


@dataclass
class SketchData:
    """The splits, the label names, and counts of every input problem that a policy handled."""

    splits: DatasetDict
    class_names: list[str]
    label_names: list[str]
    counts: dict[str, int] = field(default_factory=dict)


def load_sketch_dataset(
    train_dir: str | Path | None = None,
    train_csv: str | Path | None = None,
    test_dir: str | Path | None = None,
    test_csv: str | Path | None = None,
    validation_split: float = 0.2,
    num_folds: int | None = None,
    fold: int = 0,
    seed: int = 42,
    bad_images: str = "error",
    check_images: bool = True,
    exclude: dict[str, tuple[str, str]] | None = None,
    group_duplicates: bool = False,
) -> SketchData:
    """Load train (split into train/validation) and test.

    `label` is a `ClassLabel` over the sorted class names, so label ids equal the competition's targets.
    Every split keeps `image_path` as written in its CSV, for the submission and the reports.
    `bad_images` is "error" (stop and list them) or "skip" (leave training images out, with a count);
    test images must all decode, since the submission needs a row for each. Images that decode but are
    tiny or extreme strips are kept, listed in the log and counted. See docs/data.md.
    `exclude` maps train.csv image_path values to (issue, suggested label) from the data doctor's issues.csv
    (sketch_data/issues_file.py): they are left out, but for cross-class copies whose suggested class is their own; `group_duplicates` keeps copies of a drawing on one side of the split.
    """
    if bad_images not in ("error", "skip"):
        raise SketchDataError(f"bad_images={bad_images!r}: use 'error' or 'skip'.")
    splits, counts, class_names = DatasetDict(), {}, []
    if train_csv is not None:
        frame, counts = read_train_csv(train_csv, train_dir)
        # Before any image is skipped: a class whose images are all unusable keeps its label id (= its target).
        class_names = sorted(frame["class_name"].unique())
        frame, counts["bad_train_images_skipped"], counts["odd_size_train_images"] = _checked_images(
            frame, train_csv, bad_images, check_images
        )
        if frame.empty:
            raise SketchDataError(f"{train_csv}: none of its {counts['bad_train_images_skipped']} images is usable "
                                  "(all skipped by --bad_images skip); replace the files.")
        # copies found among every usable image, as the doctor found them (its fingerprints are reused), then excluded
        groups = _duplicate_groups(frame, validation_split, num_folds) if group_duplicates else None
        if exclude is not None:
            kept = _not_excluded(frame, exclude)
            frame, counts["excluded_train_images"] = frame[kept].reset_index(drop=True), int((~kept).sum())
            groups = groups[kept] if groups is not None else None
        if groups is not None:
            _count_clusters(groups, counts)
        train_idx, val_idx, counts["rare_class_images_kept_in_train"] = split_indices(
            frame["target"].tolist(), validation_split, num_folds, fold, seed, groups
        )
        if counts["rare_class_images_kept_in_train"]:
            logger.warning(
                "%d image(s) of classes too small to stratify were kept in train only (with --group_duplicates, also their copies).",
                counts["rare_class_images_kept_in_train"],
            )
        labelled = _labelled_features(class_names)
        splits["train"] = _dataset(frame.iloc[train_idx], labelled)
        if len(val_idx):
            splits["validation"] = _dataset(frame.iloc[val_idx], labelled)
    if test_csv is not None:
        frame = read_test_csv(test_csv, test_dir)
        _, _, counts["odd_size_test_images"] = _checked_images(frame, test_csv, "error", check_images)
        splits["test"] = _dataset(frame, Features({"image": Image(), "image_path": Value("string")}))
    return SketchData(splits, class_names, readable_names(class_names), counts)


def _not_excluded(frame, exclude: dict[str, tuple[str, str]]) -> np.ndarray:
    """Which rows to keep: all but those `exclude` names, except the cross-class copies whose cluster's class (the
    suggested label) is their own. What is left out is logged by reason (also when nothing matched)."""
    cluster_class = {path: suggested for path, (issue, suggested) in exclude.items()
                     if issue == "cross_class_duplicate" and suggested}
    own_class = frame["image_path"].map(cluster_class) == frame["class_name"]
    dropped = (frame["image_path"].isin(exclude) & ~own_class).to_numpy()
    reasons = pd.Series([exclude[path][0] for path in frame["image_path"][dropped]]).value_counts()
    logger.warning("Excluding %d of %d training images, as --exclude_images asks: %s.", dropped.sum(), len(frame),
                   ", ".join(f"{count} {reason}" for reason, count in reasons.items())
                   or "none of its rows of those issues names an image of train.csv")
    if dropped.all():
        raise SketchDataError("--exclude_images leaves no training image: check --exclude_issues.")
    return ~dropped


def _duplicate_groups(frame, validation_split: float, num_folds: int | None) -> np.ndarray | None:
    """Each row's cluster of copies (sketch_data/duplicates.py); None when there is no split to keep them across."""
    if num_folds is None and validation_split <= 0:
        logger.info("--group_duplicates: no validation split or folds, so no copies to keep together.")
        return None
    return duplicate_groups(frame["file"].tolist())


def _count_clusters(groups: np.ndarray, counts: dict[str, int]) -> None:
    sizes = np.bincount(np.unique(groups, return_inverse=True)[1])
    counts["duplicate_clusters_kept_together"] = int((sizes > 1).sum())
    counts["images_in_duplicate_clusters"] = int(sizes[sizes > 1].sum())
    logger.info("--group_duplicates: %d clusters of copies (%d images) are each kept on one side of the split.",
                counts["duplicate_clusters_kept_together"], counts["images_in_duplicate_clusters"])


def load_image_files(inputs: list[str], bad_images: str = "error") -> tuple[Dataset, dict[str, int]]:
    """Images to predict from folders (searched recursively), files or glob patterns, with no CSV.

    Returns a dataset with `image` and `image_path` (relative to its folder for a folder, else as matched), in
    sorted order, and counts of what was skipped. Unreadable images stop with a list of them, or with
    `bad_images="skip"` are left out and counted.
    """
    files, image_paths, ignored = [], [], []
    for source in inputs:
        found = _files_of(source)
        ignored += [f for f in found if f.suffix.lower() not in IMAGE_EXTENSIONS]
        found = [f for f in found if f.suffix.lower() in IMAGE_EXTENSIONS]
        base = Path(source) if Path(source).is_dir() else None
        files += [str(f) for f in found]
        image_paths += [str(f.relative_to(base)) if base else str(f) for f in found]
    if ignored:
        logger.warning("Ignoring %d file(s) that are not images by their extension, e.g. %s", len(ignored), ignored[0])
    if not files:
        raise SketchDataError(f"no image files in {', '.join(inputs)}; pass a folder of images, image files or a "
                              "quoted glob pattern such as 'data/test/*.JPEG'.")
    scan = scan_images(files, desc="Checking images")
    if scan.bad:
        listing = _first_few([f"{path}: {reason}" for path, reason in scan.bad.items()])
        if bad_images != "skip":
            raise SketchDataError(f"{len(scan.bad)} unreadable image(s): {listing}. Replace or delete them, or "
                                  "pass --bad_images skip to leave them out.")
        logger.warning("Skipping %d unreadable image(s): %s", len(scan.bad), listing)
    kept = [(file, path) for file, path in zip(files, image_paths) if file not in scan.bad]
    dataset = Dataset.from_dict({"image": [f for f, _ in kept], "image_path": [p for _, p in kept]},
                                features=Features({"image": Image(), "image_path": Value("string")}))
    return dataset, {"bad_images_skipped": len(scan.bad), "ignored_files": len(ignored)}


def _files_of(source: str) -> list[Path]:
    """The files a folder holds (recursively), the file itself, or what a glob pattern matches; sorted."""
    path = Path(source)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file())
    elif path.is_file():
        found = [path]
    else:
        found = sorted(Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file())
        if not found:
            raise SketchDataError(f"{source}: no such file or folder, and no file matches it as a glob pattern.")
    return found


def _labelled_features(class_names: list[str]) -> Features:
    return Features({"image": Image(), "label": ClassLabel(names=class_names), "image_path": Value("string")})


def _dataset(frame, features: Features) -> Dataset:
    columns = {"image": frame["file"].tolist(), "image_path": frame["image_path"].tolist()}
    if "label" in features:
        columns["label"] = frame["target"].tolist()
    return Dataset.from_dict(columns, features=features)


def _checked_images(frame, csv_path, policy: str, check_images: bool):
    """Return (the rows whose images decode, how many were skipped, how many have odd sizes)."""
    if not check_images:
        return frame, 0, 0
    scan = scan_images(frame["file"].tolist(), desc=f"Checking {Path(csv_path).name} images",
                       remember_in=Path(datasets.config.HF_DATASETS_CACHE) / "sketch_checked")
    if scan.odd_size:
        logger.warning("%s: %d image(s) of odd size, kept and resized like the others: %s", csv_path,
                       len(scan.odd_size), _listing(frame, scan.odd_size))
    if not scan.bad:
        return frame, 0, len(scan.odd_size)
    bad_rows = frame["file"].isin(scan.bad)
    listing = _listing(frame, scan.bad)
    if policy == "error":
        skip = ", or pass --bad_images skip to leave them out of training." if "target" in frame else "."
        hint = "Replace or delete these files" + skip
        raise SketchDataError(f"{csv_path}: {bad_rows.sum()} unusable image(s): {listing}. {hint}")
    logger.warning("%s: skipping %d unusable training image(s): %s", csv_path, bad_rows.sum(), listing)
    kept = frame[~bad_rows].reset_index(drop=True)
    return kept, int(bad_rows.sum()), len(set(scan.odd_size) & set(kept["file"]))


def _listing(frame, reasons: dict[str, str], shown: int = 5) -> str:
    """'line 7 cat/1.JPEG: is empty (0 bytes); ...' for the rows whose file has a reason."""
    rows = frame[frame["file"].isin(reasons)]
    return _first_few([f"line {r.line} {r.image_path}: {reasons[r.file]}" for r in rows.itertuples()], shown)


def _first_few(entries: list[str], shown: int = 5) -> str:
    """'a; b; c (and 4 more)': the first `shown` entries of a list that may be long."""
    more = f" (and {len(entries) - shown} more)" if len(entries) > shown else ""
    return "; ".join(entries[:shown]) + more
