"""Read and check the competition's train.csv and test.csv.

Every problem is reported by CSV line (the header is line 1) so it can be fixed by hand.
"""

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


class SketchDataError(ValueError):
    """Bad input data (here, in the folders or the split options): the message names the file or CSV row and says
    how to fix it."""


TRAIN_COLUMNS = ["class_name", "image_path", "target"]
TEST_COLUMNS = ["image_path"]
MAX_LISTED = 5
MAX_SHOWN = 80  # characters of a value quoted in an error


def read_train_csv(csv_path: str | Path, image_dir: str | Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """Return the checked training rows (with an absolute `file` column) and counts of what was fixed."""
    frame = _read_csv(csv_path, TRAIN_COLUMNS)
    frame["target"] = _integer_targets(frame, csv_path)
    frame, duplicates = _drop_duplicate_rows(frame, csv_path)
    _check_targets_match_class_names(frame, csv_path)
    frame["file"] = _resolve_image_files(frame, csv_path, image_dir)
    return frame, {"duplicate_train_rows_dropped": duplicates}


def read_test_csv(csv_path: str | Path, image_dir: str | Path) -> pd.DataFrame:
    """Return the test rows in file order; columns other than `image_path` are ignored."""
    frame = _read_csv(csv_path, TEST_COLUMNS)
    extra = [c for c in frame.columns if c not in TEST_COLUMNS + ["line"]]
    if extra:
        logger.warning("%s: ignoring column(s) %s; only image_path is used for prediction.", csv_path, extra)
        frame = frame[["line", "image_path"]].copy()
    repeated = frame[frame.duplicated("image_path", keep=False)]
    if len(repeated):
        raise SketchDataError(
            f"{csv_path}: {_lines(repeated)}: image_path {_quoted(repeated.image_path.iloc[0])} appears more than once. "
            "A submission needs exactly one row per test image: delete the repeated rows."
        )
    frame["file"] = _resolve_image_files(frame, csv_path, image_dir)
    return frame


def _read_csv(csv_path: str | Path, columns: list[str]) -> pd.DataFrame:
    path = Path(csv_path)
    if not path.is_file():
        raise SketchDataError(f"{path}: file not found. Pass the competition's CSV (see docs/data.md).")
    if path.stat().st_size == 0:
        raise SketchDataError(f"{path}: the file is empty; expected a header line {','.join(columns)} and one row per image.")
    frame = _parse(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SketchDataError(
            f"{path}: missing column(s) {missing}; found {_quoted(list(frame.columns), 200)}. "
            f"The header must be {','.join(columns)}."
        )
    frame = frame.apply(lambda column: column.str.strip())
    frame.insert(0, "line", frame.index + 2)  # blank lines are kept until here, so this is the line in the file
    frame = frame[(frame[columns] != "").any(axis=1)].reset_index(drop=True)  # a blank line holds no image
    if frame.empty:
        raise SketchDataError(f"{path}: has a header but no rows; add one row per image.")
    blank = frame[(frame[columns] == "").any(axis=1)]
    if len(blank):
        raise SketchDataError(f"{path}: {_lines(blank)}: empty value in {columns}; fill in or delete those rows.")
    return frame


def _parse(path: Path) -> pd.DataFrame:
    try:
        # utf-8-sig drops a byte-order mark; str dtype keeps paths such as 001.JPEG intact. index_col=False: when
        # every row has more values than the header, pandas would otherwise silently make the first ones an index,
        # shifting every column; instead its warning about the lost values becomes the error below.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False, skipinitialspace=True,
                               skip_blank_lines=False, index_col=False)
    except pd.errors.ParserWarning as error:
        raise SketchDataError(f"{path}: some rows have more values than the header has columns; quote values that "
                              "contain commas and delete trailing commas.") from error
    except pd.errors.ParserError as error:  # e.g. "Expected 3 fields in line 7, saw 4": a stray comma
        detail = str(error).strip().removeprefix("Error tokenizing data. C error: ")
        raise SketchDataError(f"{path}: cannot be read as CSV: {detail}. Quote values that contain commas.") from error
    except pd.errors.EmptyDataError as error:  # only blank lines or spaces
        raise SketchDataError(f"{path}: holds no header line, only blank space; expected a CSV header first.") from error
    except UnicodeDecodeError as error:
        raise SketchDataError(
            f"{path}: is not UTF-8 text (byte {error.start}: {error.reason}); save it as UTF-8 CSV."
        ) from error


def _integer_targets(frame: pd.DataFrame, csv_path: str | Path) -> pd.Series:
    targets = pd.to_numeric(frame["target"], errors="coerce")
    # NaN and inf are not class numbers, nor values beyond 2**53, which a float cannot hold exactly
    bad = frame[~np.isfinite(targets) | (targets != targets.round()) | (targets.abs() > 2**53)]
    if len(bad):
        raise SketchDataError(
            f"{csv_path}: {_lines(bad)}: target {_quoted(bad.target.iloc[0])} is not an integer; targets are class numbers 0..N-1."
        )
    return targets.astype(int)


def _drop_duplicate_rows(frame: pd.DataFrame, csv_path: str | Path) -> tuple[pd.DataFrame, int]:
    same_path = frame[frame.duplicated("image_path", keep=False)]
    conflicting = same_path.groupby("image_path").filter(lambda g: g[["class_name", "target"]].nunique().max() > 1)
    if len(conflicting):
        raise SketchDataError(
            f"{csv_path}: {_lines(conflicting)}: image_path {_quoted(conflicting.image_path.iloc[0])} appears with "
            "different labels. Keep the row with the right label and delete the others."
        )
    duplicated = frame.duplicated("image_path")
    if duplicated.any():
        logger.warning("%s: dropped %d duplicate row(s), %s.", csv_path, duplicated.sum(), _lines(frame[duplicated]))
    return frame[~duplicated].reset_index(drop=True), int(duplicated.sum())


def _check_targets_match_class_names(frame: pd.DataFrame, csv_path: str | Path) -> None:
    class_names = sorted(frame["class_name"].unique())
    targets = sorted(frame["target"].unique())
    if targets != list(range(len(class_names))):
        raise SketchDataError(
            f"{csv_path}: targets must be 0..{len(class_names) - 1}, one per class name in sorted order, but they run "
            f"from {targets[0]} to {targets[-1]} with {len(targets)} distinct values for {len(class_names)} class names. "
            "Renumber the target column (target = index of class_name among the sorted class names)."
        )
    expected = frame["class_name"].map({name: i for i, name in enumerate(class_names)})
    wrong = frame[frame["target"] != expected]
    if len(wrong):
        row = wrong.iloc[0]
        raise SketchDataError(
            f"{csv_path}: {_lines(wrong)}: target contradicts class_name: line {row.line} gives {_quoted(row.class_name)} "
            f"target {row.target}, but {_quoted(row.class_name)} is class {expected[wrong.index[0]]} of the "
            f"{len(class_names)} class names in sorted order. Fix the target column "
            "(target = index of class_name among the sorted class names)."
        )


def _resolve_image_files(frame: pd.DataFrame, csv_path: str | Path, image_dir: str | Path) -> list[str]:
    root = os.path.abspath(image_dir)
    if not os.path.isdir(root):
        raise SketchDataError(f"{image_dir}: image folder not found (needed by {csv_path}).")
    # Normalise the text of the path (no symlinks followed): "../" and absolute paths cannot leave the folder,
    # while symlinks placed inside it by the data's owner (a cache, git-annex) keep working. os.path, not pathlib:
    # a third of the time, which counts at 25,000 images in every fold.
    files = [os.path.normpath(os.path.join(root, p)) for p in frame["image_path"]]
    inside = os.path.join(root, "")
    escaping = frame[[os.path.isabs(p) or not f.startswith(inside) for p, f in zip(frame.image_path, files)]]
    if len(escaping):
        raise SketchDataError(
            f"{csv_path}: {_lines(escaping)}: image_path {_quoted(escaping.image_path.iloc[0])} points outside the image "
            f"folder {root}. image_path must be relative to that folder and stay inside it."
        )
    missing = frame[[not os.path.isfile(f) for f in files]]  # False, not an error, for a name too long
    if len(missing):
        raise SketchDataError(
            f"{csv_path}: {_lines(missing)}: image not found under {root} "
            f"(first: {_quoted(missing.image_path.iloc[0])}). Restore the files or delete those rows."
        )
    return files


def _quoted(value, limit: int = MAX_SHOWN) -> str:
    """A value from the CSV as the error shows it: repr, cut short so that a 100 kB field stays a one-line error."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value))} characters)"


def _lines(rows: pd.DataFrame) -> str:
    listed = ", ".join(str(n) for n in rows["line"].head(MAX_LISTED))
    more = f" and {len(rows) - MAX_LISTED} more" if len(rows) > MAX_LISTED else ""
    return f"line{'s' if len(rows) > 1 else ''} {listed}{more}"
