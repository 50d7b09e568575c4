"""The data doctor's issues.csv (scripts/doctor.py): its columns, and what the training options read from it.

One row per problem: `image_path` (prefixed `train/` or `test/`, as the image is named in train.csv or test.csv),
`issue`, `score`, `related_image_path` (the other image of a pair, or empty) and `suggested_label` (a class name,
or empty). Nothing is applied unless an option asks: --exclude_images and --duplicate_labels.
"""

import logging
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from .csv_files import SketchDataError

logger = logging.getLogger(__name__)
COLUMNS = ["image_path", "issue", "score", "related_image_path", "suggested_label"]
DUPLICATE_ISSUES = ("train_test_duplicate", "cross_class_duplicate", "duplicate", "near_duplicate")  # score: higher
ISSUE_ORDER = (*DUPLICATE_ISSUES, "label", "outlier")  # then cleanvision's image-quality issues, alphabetically
DEFAULT_EXCLUDED = ("label", "cross_class_duplicate")
TRAIN, TEST = "train/", "test/"


def issue_order(issues: Iterable[str]) -> list[str]:
    """The issues present, in ISSUE_ORDER, then the image-quality issues alphabetically."""
    present = set(issues)
    return [issue for issue in ISSUE_ORDER if issue in present] + sorted(present - set(ISSUE_ORDER))


def worst_first(issues: pd.DataFrame) -> pd.DataFrame:
    """Grouped by issue in issue_order, worst first within each: the most similar copies, the lowest other scores."""
    rank = {issue: position for position, issue in enumerate(issue_order(issues["issue"]))}
    score = pd.to_numeric(issues["score"], errors="coerce")
    worst = score.where(~issues["issue"].isin(DUPLICATE_ISSUES), -score)
    return (issues.assign(_rank=issues["issue"].map(rank), _worst=worst)
            .sort_values(["_rank", "_worst", "image_path"], kind="stable", na_position="last")
            .drop(columns=["_rank", "_worst"]).reset_index(drop=True))


def read_issues(path: str | Path) -> pd.DataFrame:
    """issues.csv, checked: a missing file or column is one error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise SketchDataError(f"{path}: file not found. Run scripts/doctor.py first; it writes OUTPUT_DIR/issues.csv.")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise SketchDataError(f"{path}: not a readable CSV ({error}); write it again with scripts/doctor.py.") from None
    if missing := [column for column in COLUMNS if column not in frame]:
        raise SketchDataError(f"{path}: no column {', '.join(missing)}; an issues.csv of scripts/doctor.py has "
                              f"{','.join(COLUMNS)}.")
    return frame


def excluded_train_images(path: str | Path, issues: list[str]) -> dict[str, tuple[str, str]]:
    """train.csv image_path -> (its first issue among `issues`, the suggested label), for the training images those
    rows name. A cross-class copy whose suggested label is its own class is one to keep (sketch_data/dataset.py)."""
    frame = read_issues(path)
    if absent := sorted(set(issues) - set(frame["issue"])):
        logger.warning("%s has no rows of issue %s (it has %s).", path, ", ".join(absent),
                       ", ".join(sorted(frame["issue"].unique())) or "none")
    rows = frame[frame["issue"].isin(issues) & frame["image_path"].str.startswith(TRAIN)]
    rows = rows.drop_duplicates("image_path")
    return dict(zip(rows["image_path"].str.removeprefix(TRAIN), zip(rows["issue"], rows["suggested_label"])))


def train_copies_in_test(path: str | Path) -> dict[str, str]:
    """test.csv image_path -> the class of the training drawing it copies (the doctor's suggested label: the copy
    cluster's majority class; a test image copying a cluster without one has none and is left out)."""
    frame = read_issues(path)
    rows = frame[(frame["issue"] == "train_test_duplicate") & frame["image_path"].str.startswith(TEST)
                 & (frame["suggested_label"] != "")]
    return dict(zip(rows["image_path"].str.removeprefix(TEST), rows["suggested_label"]))
