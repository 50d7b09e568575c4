"""Turn the competition's CSV files into a `datasets.DatasetDict`, like an `imagefolder` dataset."""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value

from .csv_files import read_test_csv, read_train_csv
from .errors import SketchDataError
from .images import find_bad_images
from .labels import readable_names
from .splits import split_indices

logger = logging.getLogger(__name__)


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
) -> SketchData:
    """Load train (split into train/validation) and test.

    `label` is a `ClassLabel` over the sorted class names, so label ids equal the competition's targets.
    Every split keeps `image_path` as written in its CSV, for the submission and the reports.
    `bad_images` is "error" (stop and list them) or "skip" (leave training images out, with a count).
    """
    if bad_images not in ("error", "skip"):
        raise SketchDataError(f"bad_images={bad_images!r}: use 'error' or 'skip'.")
    splits, counts, class_names = DatasetDict(), {}, []
    if train_csv is not None:
        frame, counts = read_train_csv(train_csv, train_dir)
        frame, counts["bad_train_images_skipped"] = _without_bad_images(frame, train_csv, bad_images, check_images)
        class_names = sorted(frame["class_name"].unique())
        train_idx, val_idx, counts["rare_class_images_kept_in_train"] = split_indices(
            frame["target"].tolist(), validation_split, num_folds, fold, seed
        )
        if counts["rare_class_images_kept_in_train"]:
            logger.warning(
                "%d image(s) of classes too small to stratify were kept in train only.",
                counts["rare_class_images_kept_in_train"],
            )
        labelled = _labelled_features(class_names)
        splits["train"] = _dataset(frame.iloc[train_idx], labelled)
        if len(val_idx):
            splits["validation"] = _dataset(frame.iloc[val_idx], labelled)
    if test_csv is not None:
        frame = read_test_csv(test_csv, test_dir)
        _without_bad_images(frame, test_csv, "error", check_images)
        splits["test"] = _dataset(frame, Features({"image": Image(), "image_path": Value("string")}))
    return SketchData(splits, class_names, readable_names(class_names), counts)


def _labelled_features(class_names: list[str]) -> Features:
    return Features({"image": Image(), "label": ClassLabel(names=class_names), "image_path": Value("string")})


def _dataset(frame, features: Features) -> Dataset:
    columns = {"image": frame["file"].tolist(), "image_path": frame["image_path"].tolist()}
    if "label" in features:
        columns["label"] = frame["target"].tolist()
    return Dataset.from_dict(columns, features=features)


def _without_bad_images(frame, csv_path, policy: str, check_images: bool):
    if not check_images:
        return frame, 0
    bad = find_bad_images(frame["file"].tolist(), desc=f"Checking {Path(csv_path).name} images")
    if not bad:
        return frame, 0
    rows = frame[frame["file"].isin(bad)]
    listing = "; ".join(f"line {r.line} {r.image_path}: {bad[r.file]}" for r in rows.head(5).itertuples())
    more = f" (and {len(rows) - 5} more)" if len(rows) > 5 else ""
    if policy == "error":
        hint = "Replace or delete these files" + (", or pass --bad_images skip to leave them out of training." if "target" in frame else ".")
        raise SketchDataError(f"{csv_path}: {len(rows)} unusable image(s): {listing}{more}. {hint}")
    logger.warning("Skipping %d unusable training image(s): %s%s", len(rows), listing, more)
    return frame[~frame["file"].isin(bad)].reset_index(drop=True), len(rows)
