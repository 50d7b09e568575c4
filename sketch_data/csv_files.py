"""Read and check the competition's train.csv and test.csv.

Every problem is reported by CSV line (the header is line 1) so it can be fixed by hand.
"""

import logging
from pathlib import Path

import pandas as pd

from .errors import SketchDataError

logger = logging.getLogger(__name__)

TRAIN_COLUMNS = ["class_name", "image_path", "target"]
TEST_COLUMNS = ["image_path"]
MAX_LISTED = 5


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
            f"{csv_path}: {_lines(repeated)} repeat an image_path ({repeated.image_path.iloc[0]!r}). "
            "A submission needs exactly one row per test image: remove the duplicate rows."
        )
    frame["file"] = _resolve_image_files(frame, csv_path, image_dir)
    return frame


def _read_csv(csv_path: str | Path, columns: list[str]) -> pd.DataFrame:
    path = Path(csv_path)
    if not path.is_file():
        raise SketchDataError(f"{path}: file not found. Pass the competition's CSV (see README, 'Data format').")
    if path.stat().st_size == 0:
        raise SketchDataError(f"{path}: the file is empty; expected a header line {','.join(columns)} and one row per image.")
    # utf-8-sig drops a byte-order mark; str dtype keeps paths such as 001.JPEG intact.
    frame = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False, skipinitialspace=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SketchDataError(
            f"{path}: missing column(s) {missing}; found {list(frame.columns)}. "
            f"The header must be {','.join(columns)}."
        )
    if frame.empty:
        raise SketchDataError(f"{path}: has a header but no rows.")
    frame = frame.apply(lambda column: column.str.strip())
    frame.insert(0, "line", frame.index + 2)
    blank = frame[(frame[columns] == "").any(axis=1)]
    if len(blank):
        raise SketchDataError(f"{path}: {_lines(blank)} have an empty value in {columns}; fill or delete them.")
    return frame


def _integer_targets(frame: pd.DataFrame, csv_path: str | Path) -> pd.Series:
    targets = pd.to_numeric(frame["target"], errors="coerce")
    bad = frame[targets.isna() | (targets != targets.round())]
    if len(bad):
        raise SketchDataError(f"{csv_path}: {_lines(bad)} have a target that is not an integer ({bad.target.iloc[0]!r}).")
    return targets.astype(int)


def _drop_duplicate_rows(frame: pd.DataFrame, csv_path: str | Path) -> tuple[pd.DataFrame, int]:
    same_path = frame[frame.duplicated("image_path", keep=False)]
    conflicting = same_path.groupby("image_path").filter(lambda g: g[["class_name", "target"]].nunique().max() > 1)
    if len(conflicting):
        raise SketchDataError(
            f"{csv_path}: {_lines(conflicting)} give {conflicting.image_path.iloc[0]!r} different labels. "
            "Keep the row with the right label and delete the others."
        )
    duplicated = frame.duplicated("image_path")
    if duplicated.any():
        logger.warning("%s: dropped %d duplicate row(s): %s.", csv_path, duplicated.sum(), _lines(frame[duplicated]))
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
            f"{csv_path}: {_lines(wrong)} have a target that contradicts its class_name: line {row.line} says "
            f"{row.class_name!r} is {row.target}, but the index of {row.class_name!r} among the "
            f"{len(class_names)} sorted class names is {expected[wrong.index[0]]}. "
            "Targets must be 0..N-1 in sorted class-name order; fix the target column."
        )


def _resolve_image_files(frame: pd.DataFrame, csv_path: str | Path, image_dir: str | Path) -> list[str]:
    root = Path(image_dir).resolve()
    if not root.is_dir():
        raise SketchDataError(f"{image_dir}: image folder not found (needed by {csv_path}).")
    files = [(root / p).resolve() for p in frame["image_path"]]
    escaping = frame[[Path(p).is_absolute() or not f.is_relative_to(root) for p, f in zip(frame.image_path, files)]]
    if len(escaping):
        raise SketchDataError(
            f"{csv_path}: {_lines(escaping)} have an image_path outside {root} ({escaping.image_path.iloc[0]!r}). "
            "image_path must be relative to the image folder and stay inside it."
        )
    missing = frame[[not f.is_file() for f in files]]
    if len(missing):
        raise SketchDataError(
            f"{csv_path}: {_lines(missing)} name images that do not exist under {root} "
            f"(first: {missing.image_path.iloc[0]!r}). Restore the files or delete those rows."
        )
    return [str(f) for f in files]


def _lines(rows: pd.DataFrame) -> str:
    listed = ", ".join(str(n) for n in rows["line"].head(MAX_LISTED))
    more = f" and {len(rows) - MAX_LISTED} more" if len(rows) > MAX_LISTED else ""
    return f"line{'s' if len(rows) > 1 else ''} {listed}{more}"
