"""Copy a competition-layout data set and inject known label errors and near-duplicates, recording the truth.

A data doctor (scripts/doctor.py) that finds duplicates and label errors can only be measured on data whose problems
are known. Real sets have few and unknown ones, so here a seeded copy gets:

- label flips: train images moved to another (random) class folder, with train.csv following;
- near-duplicates of train images: in their own class (`duplicate`), in another class under that class's label
  (`cross_class_duplicate`), and in test/ (`train_test_duplicate`, with a row in test.csv and solution.csv).

Each copy is the source drawing under a random dihedral op (half the time), maybe a rescale, and always a JPEG
re-encode, which are the changes a duplicate finder must see through. Every injected image comes from a different
source image, and no flipped image is a source, so the truth in injected.csv is one row per injected image.
New names reveal nothing: a random 16-digit number in train/ (like QuickDraw's), the next free integer in test/, and
new train.csv rows at random places. solution_original.csv keeps the answer key of the original test images only,
for `original_test_accuracy`.
"""

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .atomic import atomic_write_csv
from .duplicates import DIHEDRAL_OPS

logger = logging.getLogger(__name__)

MARKER = "noisy_copy.json"  # written first, so that a copy (even a killed one) is known as ours and may be redone
INJECTED_COLUMNS = ["image_path", "kind", "related_image_path", "true_label", "given_label", "transform"]
RESCALE_RANGES = ((0.8, 0.95), (1.05, 1.25))
JPEG_QUALITY = (60, 95)  # inclusive


@dataclass(frozen=True)
class NoiseCounts:
    """How much to inject: a fraction of the train images flipped, and numbers of near-duplicates of each kind."""

    label_noise: float = 0.1
    within_class: int = 60
    cross_class: int = 40
    train_test: int = 40


def make_noisy_copy(source: str | Path, output_dir: str | Path, counts: NoiseCounts = NoiseCounts(),
                    seed: int = 0) -> pd.DataFrame:
    """Copy `source` into `output_dir`, inject `counts`, write injected.csv and solution_original.csv; return the
    injected rows. Raises ValueError (naming the file or folder) for bad input or a foreign non-empty `output_dir`."""
    source, output_dir = Path(source), Path(output_dir)
    train, test, solution = _read_source(source)
    classes = sorted(train["class_name"].unique())
    flips = round(counts.label_noise * len(train))
    _check_counts(counts, flips, len(train), len(classes), seed)
    _prepare_output(source, output_dir, {"source": str(source.resolve()), "seed": seed, **asdict(counts)})
    shutil.copytree(source, output_dir, dirs_exist_ok=True, copy_function=shutil.copyfile,
                    ignore=shutil.ignore_patterns(MARKER))

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    ends = np.cumsum([flips, counts.within_class, counts.cross_class, counts.train_test])
    flipped, within, cross, to_test = np.split(order[: ends[-1]], ends[:-1])
    taken = {Path(path).stem for path in train["image_path"]}
    injected = _flip_labels(output_dir, train, flipped, classes, rng)
    new_rows = []
    for kind, rows in (("duplicate", within), ("cross_class_duplicate", cross)):
        for row in rows:
            record, train_row = _train_copy(output_dir, train.iloc[row], kind, classes, taken, rng)
            injected.append(record)
            new_rows.append(train_row)
    test, solution, test_records = _test_copies(output_dir, train.iloc[to_test], test, solution, classes, rng)
    injected += test_records

    train = _with_rows_scattered(train, new_rows, rng)
    if emptied := sorted(set(classes) - set(train["class_name"])):
        raise ValueError(f"the flips empty the class(es) {', '.join(emptied)}, which would shift the targets: "
                         "lower --label_noise or pick another seed.")
    atomic_write_csv(solution.iloc[: len(solution) - len(test_records)], output_dir / "solution_original.csv")
    atomic_write_csv(test, output_dir / "test.csv")
    atomic_write_csv(solution, output_dir / "solution.csv")
    atomic_write_csv(train, output_dir / "train.csv")
    frame = pd.DataFrame(injected, columns=INJECTED_COLUMNS)
    atomic_write_csv(frame, output_dir / "injected.csv")
    return frame


def _read_source(source: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    if not source.is_dir():
        raise ValueError(f"{source}: no such folder (the source data set).")
    frames = []
    for name, columns in (("train.csv", ["class_name", "image_path", "target"]), ("test.csv", ["image_path"]),
                          ("solution.csv", ["ID", "image_path", "target"])):
        path = source / name
        if not path.is_file():
            raise ValueError(f"{path}: no such file (a noisy copy needs train.csv, test.csv and solution.csv).")
        try:
            frame = pd.read_csv(path, dtype={"class_name": str, "image_path": str}, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not a readable CSV ({error}).") from None
        missing = [column for column in columns if column not in frame.columns]
        if missing:
            raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}.")
        frames.append(frame)
    train, test, solution = frames
    if list(test["image_path"]) != list(solution["image_path"]):
        raise ValueError(f"{source / 'solution.csv'} does not list test.csv's images in the same order.")
    return train, test, solution


def _check_counts(counts: NoiseCounts, flips: int, train_images: int, num_classes: int, seed: int) -> None:
    if not 0 <= counts.label_noise < 1:
        raise ValueError(f"label_noise={counts.label_noise}: must be in [0, 1).")
    if min(counts.within_class, counts.cross_class, counts.train_test, seed) < 0:
        raise ValueError("within_class, cross_class, train_test and seed must be 0 or more.")
    if num_classes < 2:
        raise ValueError(f"the source has {num_classes} class: flips and cross-class copies need at least 2.")
    needed = flips + counts.within_class + counts.cross_class + counts.train_test
    if needed > train_images:
        raise ValueError(f"{flips} flips and {needed - flips} duplicates need {needed} distinct train images; "
                         f"the source has {train_images}.")


def _prepare_output(source: Path, output_dir: Path, parameters: dict) -> None:
    """Refuse a file, a folder inside the source (or holding it), or a non-empty folder that is not a noisy copy;
    empty a previous noisy copy; then write the marker."""
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"{output_dir} is a file, not a folder: pick an empty (or new) folder for the noisy copy.")
    resolved, source_resolved = output_dir.resolve(), source.resolve()
    if resolved.is_relative_to(source_resolved) or source_resolved.is_relative_to(resolved):
        raise ValueError(f"{output_dir} overlaps the source {source}: pick a folder outside it.")
    if output_dir.exists() and any(output_dir.iterdir()):
        if not (output_dir / MARKER).is_file():
            raise ValueError(f"{output_dir} holds other files (no {MARKER}, so not a noisy copy made here): "
                             "pick an empty (or new) folder for the noisy copy.")
        logger.info("Replacing the previous noisy copy in %s.", output_dir)
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / MARKER).write_text(json.dumps(parameters, indent=2) + "\n", encoding="utf-8")


def _flip_labels(root: Path, train: pd.DataFrame, rows: np.ndarray, classes: list[str],
                 rng: np.random.Generator) -> list[dict]:
    """Move each row's image to a random other class's folder (same file name) and relabel its train.csv row."""
    records = []
    for row in rows:
        true_label, old_path = train.at[row, "class_name"], train.at[row, "image_path"]
        new_label = _other_class(true_label, classes, rng)
        new_path = f"{new_label}/{Path(old_path).name}"
        if (root / "train" / new_path).exists():
            raise ValueError(f"{root / 'train' / new_path} exists already: cannot move {old_path} there.")
        (root / "train" / new_label).mkdir(exist_ok=True)
        (root / "train" / old_path).rename(root / "train" / new_path)
        train.loc[row, ["class_name", "image_path", "target"]] = [new_label, new_path, classes.index(new_label)]
        records.append({"image_path": f"train/{new_path}", "kind": "label", "related_image_path": "",
                        "true_label": true_label, "given_label": new_label, "transform": ""})
    return records


def _train_copy(root: Path, source_row: pd.Series, kind: str, classes: list[str], taken: set[str],
                rng: np.random.Generator) -> tuple[dict, dict]:
    """A transformed copy of a train image, in its own class (`duplicate`) or in a random other class: the injected
    record and the new train.csv row."""
    true_label = source_row["class_name"]
    given_label = true_label if kind == "duplicate" else _other_class(true_label, classes, rng)
    name = _new_train_name(taken, rng)
    path = f"{given_label}/{name}.JPEG"
    transform = copy_transformed(root / "train" / source_row["image_path"], root / "train" / path, rng)
    record = {"image_path": f"train/{path}", "kind": kind, "related_image_path": f"train/{source_row['image_path']}",
              "true_label": true_label, "given_label": given_label, "transform": transform}
    return record, {"class_name": given_label, "image_path": path, "target": classes.index(given_label)}


def _test_copies(root: Path, sources: pd.DataFrame, test: pd.DataFrame, solution: pd.DataFrame, classes: list[str],
                 rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """Transformed copies of `sources` in test/ as `<next free integer>.JPEG`, appended to test.csv and solution.csv
    (IDs continuing after the last one, target the source's class)."""
    taken = {path.name for path in (root / "test").iterdir()} | set(test["image_path"])
    numbers = [int(Path(path).stem) for path in taken if Path(path).stem.isdigit()]
    number = max(numbers, default=-1) + 1
    next_id = int(solution["ID"].max()) + 1 if len(solution) else 0
    records, rows = [], []
    for _, source_row in sources.iterrows():
        while f"{number}.JPEG" in taken:
            number += 1
        name = f"{number}.JPEG"
        taken.add(name)
        transform = copy_transformed(root / "train" / source_row["image_path"], root / "test" / name, rng)
        records.append({"image_path": f"test/{name}", "kind": "train_test_duplicate",
                        "related_image_path": f"train/{source_row['image_path']}",
                        "true_label": source_row["class_name"], "given_label": "", "transform": transform})
        rows.append({"ID": next_id, "image_path": name, "target": classes.index(source_row["class_name"])})
        next_id += 1
    new = pd.DataFrame(rows, columns=["ID", "image_path", "target"])
    test = pd.concat([test, new[["image_path"]]], ignore_index=True)
    return test, pd.concat([solution, new], ignore_index=True), records


def _other_class(label: str, classes: list[str], rng: np.random.Generator) -> str:
    others = [name for name in classes if name != label]
    return others[rng.integers(len(others))]


def _new_train_name(taken: set[str], rng: np.random.Generator) -> str:
    """A random 16-digit number not used by any train image yet."""
    while (name := str(rng.integers(10**15, 10**16))) in taken:
        pass
    taken.add(name)
    return name


def _with_rows_scattered(train: pd.DataFrame, new_rows: list[dict], rng: np.random.Generator) -> pd.DataFrame:
    """train.csv with the new rows at random places (the original rows keep their order), so that the row order
    does not tell the injected images apart."""
    keys = np.concatenate([np.arange(len(train)), rng.uniform(0, len(train), len(new_rows))])
    combined = pd.concat([train, pd.DataFrame(new_rows, columns=train.columns)], ignore_index=True)
    return combined.iloc[np.argsort(keys, kind="stable")].reset_index(drop=True)


def copy_transformed(source: Path, target: Path, rng: np.random.Generator) -> str:
    """Save a random transform of `source` as the JPEG `target`; return it as a string like `rot90+rescale0.87+jpeg72`:
    a dihedral op other than identity half the time, a rescale by a factor in [0.8, 0.95] or [1.05, 1.25] half the
    time, and always a re-encode at a quality in [60, 95]."""
    with Image.open(source) as opened:
        image = opened.convert("RGB") if opened.mode not in ("L", "RGB") else opened.copy()
    steps = []
    if rng.random() < 0.5:
        op = list(DIHEDRAL_OPS)[rng.integers(len(DIHEDRAL_OPS))]
        image = image.transpose(DIHEDRAL_OPS[op])
        steps.append(op)
    if rng.random() < 0.5:
        low, high = RESCALE_RANGES[rng.integers(len(RESCALE_RANGES))]
        factor = round(float(rng.uniform(low, high)), 2)
        image = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.BICUBIC)
        steps.append(f"rescale{factor:.2f}")
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, "JPEG", quality=quality)
    return "+".join([*steps, f"jpeg{quality}"])


def undo_dihedral(image: Image.Image, transform: str) -> Image.Image:
    """`image` with the dihedral op named in `transform` undone (each op's inverse is itself, but for the rotations)."""
    op = transform.split("+")[0]
    inverse = {"rot90": "rot270", "rot270": "rot90"}.get(op, op)
    return image.transpose(DIHEDRAL_OPS[inverse]) if inverse in DIHEDRAL_OPS else image


def original_test_accuracy(submission_csv: str | Path, noisy_dir: str | Path) -> float:
    """Accuracy of a submission for the noisy copy on the original test images only (from solution_original.csv),
    whatever the order of its rows; every original test image must be in it exactly once."""
    key_path = Path(noisy_dir) / "solution_original.csv"
    for path in (submission_csv, key_path):
        if not Path(path).is_file():
            raise ValueError(f"{path}: no such file.")
    submission = pd.read_csv(submission_csv, dtype={"image_path": str})
    key = pd.read_csv(key_path, dtype={"image_path": str})
    if not {"image_path", "target"} <= set(submission.columns):
        raise ValueError(f"{submission_csv} lacks the column image_path or target.")
    if submission["image_path"].duplicated().any():
        raise ValueError(f"{submission_csv} lists an image_path more than once.")
    merged = key.merge(submission[["image_path", "target"]], on="image_path", how="left", suffixes=("", "_predicted"))
    missing = merged["target_predicted"].isna()
    if missing.any():
        raise ValueError(f"{submission_csv} lacks {int(missing.sum())} original test image(s), e.g. "
                         f"{merged.loc[missing, 'image_path'].iloc[0]}.")
    return float((merged["target"] == merged["target_predicted"]).mean())
