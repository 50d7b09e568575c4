#!/usr/bin/env python
"""Fuzz the data loader: random train.csv/test.csv files and image bytes must never end in a traceback or a hang.

    python scripts/fuzz_inputs.py --examples 2000           # real sketches from ../shared/data/quickdraw-mini
    python scripts/fuzz_inputs.py --examples 500 --seed 7 --data path/to/competition_layout

Each generated case (CSV headers, quoting, encodings, blank lines, huge fields, odd paths; images in every
Pillow mode, truncated and bit-flipped real JPEG/PNG files) must end in exactly one of:
- a loaded data set (`sketch_data.load_sketch_dataset`), possibly with counted policy outcomes (skipped images);
- `SketchDataError`, the CLI's one-line error (exit 2), naming the file it is about.
Any other exception, a multi-line or unbounded message, or a case over TIME_LIMIT_S is a failure: the failing
input is saved (shrunk by hypothesis) under tests/sketch_data/fuzz_regressions/<name>/, which
tests/sketch_data/test_fuzz_inputs.py replays, and the script exits 1.
"""

import argparse
import csv
import dataclasses
import functools
import hashlib
import io
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

if __name__ == "__main__":
    # One progress bar per case would drown the report. Only as a script: tqdm reads this when first imported, and
    # set by an import (the test suite's) it would silence every later subprocess's progress bars too.
    os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from PIL import Image

from sketch_data import SketchDataError, load_sketch_dataset

REPO = Path(__file__).resolve().parent.parent

REGRESSIONS = REPO / "tests" / "sketch_data" / "fuzz_regressions"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "quickdraw-mini"
TIME_LIMIT_S = 20  # per case; a healthy one takes well under a second
MAX_MESSAGE = 1500  # characters: a one-line error, not a dump of a 100 kB field
OPTIONS_FILE = "options.json"
DERIVED_SUFFIX = ".derived.json"

MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I", "I;16", "I;16B", "F", "HSV", "LAB"]
FORMATS = ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "ICO"]
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]
WEIRD_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
CLASS_NAMES = st.one_of(st.sampled_from(["cat", "dog", "n04355933", "a,b", 'say "hi"', " space ", "x\ny", "é日本"]),
                        WEIRD_TEXT, st.just("z" * 100_000))


class FuzzFailure(AssertionError):
    """A case ended in a traceback, a bad message or a hang."""


@dataclass(frozen=True)
class Derived:
    """An image made from one of the real sketches, kept as this recipe (never as bytes) in a saved regression, so
    that no copy of the shared data set enters the repository; it is rebuilt from the data folder on replay."""

    source: str  # relative to the data folder
    png: bool = False  # re-encoded as PNG
    cut: int | None = None  # keep only the first `cut` bytes
    flips: tuple[tuple[int, int], ...] = ()  # (byte, bit) pairs flipped

    def bytes_from(self, data_dir: Path) -> bytes:
        data = bytearray(_source_bytes(data_dir, self.source, self.png))
        if self.cut is not None:
            data = data[: self.cut]
        for position, bit in self.flips:
            data[position % len(data)] ^= 1 << bit
        return bytes(data)


@functools.lru_cache(maxsize=64)
def _source_bytes(data_dir: Path, source: str, png: bool) -> bytes:
    data = (data_dir / source).read_bytes()
    return _encode(Image.open(io.BytesIO(data)), "PNG") if png else data


@dataclass
class FuzzCase:
    """The files of one case (relative path -> bytes) and how load_sketch_dataset is called on them."""

    files: dict[str, bytes | Derived]
    options: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # what hypothesis prints: sizes, not 100 kB fields
        return f"FuzzCase({ {name: len(data) for name, data in self.files.items()} }, {self.options})"

    def write(self, folder: Path, data_dir: Path) -> Path:
        """The case's files under `folder`, derived images built from `data_dir`."""
        for relative, data in self.files.items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data.bytes_from(data_dir) if isinstance(data, Derived) else data)
        (folder / "train").mkdir(exist_ok=True)
        (folder / "test").mkdir(exist_ok=True)
        (folder / OPTIONS_FILE).write_text(json.dumps(self.options))
        return folder


def real_images(data_dir: Path, count: int = 6) -> list[tuple[Derived, int]]:
    """A few real sketches, as they are and re-encoded as PNG, each with its size in bytes."""
    files = sorted((data_dir / "train").rglob("*.JPEG"))[:count] if (data_dir / "train").is_dir() else []
    if not files:
        raise SystemExit(f"no real sketches under {data_dir}/train: pass --data (a competition-layout folder).")
    sources = [Derived(str(f.relative_to(data_dir))) for f in files]
    sources += [Derived(source.source, png=True) for source in sources[: count // 2]]
    return [(source, len(source.bytes_from(data_dir))) for source in sources]


def _encode(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # Pillow deprecates some mode/format pairs; old files still hold them
        warnings.simplefilter("ignore", DeprecationWarning)
        image.save(buffer, format=image_format)
    return buffer.getvalue()


@st.composite
def valid_image(draw) -> bytes:
    """A small image in any Pillow mode, saved in a format that takes that mode (TIFF or PNG otherwise)."""
    width, height = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    seed = draw(st.integers(0, 2**32 - 1))
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    mode = draw(st.sampled_from(MODES))
    try:
        image = image.convert(mode)
    except (ValueError, OSError):
        image = image.convert("L")
    for image_format in (draw(st.sampled_from(FORMATS)), "TIFF", "PNG"):
        try:
            return _encode(image, image_format)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return _encode(image.convert("RGB"), "PNG")


def image_bytes(draw, real: list[tuple[Derived, int]], damage: set[str]) -> bytes | Derived:
    """A real sketch or a valid image in any mode; with "images" damage also cut, bit-flipped, empty or noise."""
    kind = draw(st.sampled_from(["real", "valid"] + (["cut", "flipped", "empty", "noise"] if "images" in damage else [])))
    if kind == "valid":
        return draw(valid_image())
    if kind == "empty":
        return b""
    if kind == "noise":
        return draw(st.binary(max_size=64))
    source, size = draw(st.sampled_from(real))
    if kind == "cut":
        return dataclasses.replace(source, cut=draw(st.integers(0, size - 1)))
    if kind == "flipped":
        flips = draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, 7)), min_size=1, max_size=8))
        return dataclasses.replace(source, flips=tuple(flips))
    return source


# What may go wrong in a case; each case has at most two kinds, so that most cases get far into the checks
DAMAGE = ["images", "paths", "targets", "names", "header", "dialect", "blank_lines", "encoding", "cut", "not_csv"]


def _csv_text(draw, header: list[str], rows: list[list[str]], damage: set[str]) -> bytes:
    """The rows as CSV; the damage kinds choose dialect, encoding, blank lines, a cut, or no CSV at all."""
    if "not_csv" in damage and draw(st.booleans()):
        return draw(st.binary(max_size=200))
    buffer = io.StringIO()
    dialect = "dialect" in damage
    writer = csv.writer(
        buffer, quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC])),
        delimiter=draw(st.sampled_from([",", ";", "\t", "|"])) if dialect else ",",
        lineterminator=draw(st.sampled_from(["\n", "\r\n", "\r"])) if dialect else "\n",
    )
    if not (dialect and draw(st.integers(0, 3)) == 0):  # a file without its header line
        writer.writerow(header)
    for row in rows:
        if "blank_lines" in damage and draw(st.booleans()):
            buffer.write(draw(st.sampled_from(["\n", "\r\n", " \n", ",,\n", "\t\n"])))
        writer.writerow(row)
    text = buffer.getvalue()
    if "cut" in damage:
        text = text[: draw(st.integers(0, len(text)))]  # cut mid-row
    encoding = draw(st.sampled_from(ENCODINGS)) if "encoding" in damage else "utf-8"
    return text.encode(encoding, errors="replace")


def _header(draw, columns: list[str], damage: set[str]) -> list[str]:
    header = list(columns)
    if "header" not in damage:
        return header
    change = draw(st.sampled_from(["shuffle", "extra", "drop", "case", "duplicate"]))
    if change == "shuffle":
        header = draw(st.permutations(header))
    elif change == "extra":
        header.insert(draw(st.integers(0, len(header))), draw(st.sampled_from(["extra", "", " id ", "Unnamed: 0"])))
    elif change == "drop":
        del header[draw(st.integers(0, len(header) - 1))]
    elif change == "case":
        header = [f" {name.upper()} " for name in header]
    else:
        header.append(draw(st.sampled_from(header)))
    return header


def _path_in_csv(draw, stored: str, damage: set[str]) -> str:
    if "paths" not in damage or draw(st.booleans()):
        return stored
    return draw(st.one_of(
        st.sampled_from(["../" + stored, "/etc/passwd", stored + " ", "./" + stored, stored.upper(), "missing/x.png",
                         "", "c0", "c0/", "c0//" + stored.split("/")[-1], "\\server\\x.png", "a" * 5000]),
        WEIRD_TEXT,
    ))


def _target(draw, correct: int, damage: set[str]) -> str:
    if "targets" not in damage or draw(st.booleans()):
        return str(correct)
    return draw(st.one_of(st.sampled_from([f"{correct}.0", f" {correct} ", "-1", "99999999999999999999999", "1e3",
                                           "nan", "inf", "0x1", "", "1_0"]), WEIRD_TEXT))


@st.composite
def cases(draw, real: list[tuple[Derived, int]]) -> FuzzCase:
    damage = draw(st.sets(st.sampled_from(DAMAGE), max_size=2))
    names = CLASS_NAMES if "names" in damage else st.sampled_from(["cat", "dog", "n04355933", "owl"])
    classes = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    files, train_rows, test_rows = {}, [], []
    row_classes = draw(st.lists(st.sampled_from(classes), min_size=1, max_size=8))
    present = sorted(set(row_classes))  # targets index the class names that appear, in sorted order
    for i, name in enumerate(row_classes):
        stored = f"c{classes.index(name)}/{i}{draw(st.sampled_from(['.JPEG', '.png', '.jpg', '']))}"
        files[f"train/{stored}"] = image_bytes(draw, real, damage)
        train_rows.append([name, _path_in_csv(draw, stored, damage), _target(draw, present.index(name), damage)])
    for i in range(draw(st.integers(0, 4))):
        files[f"test/{i}.JPEG"] = image_bytes(draw, real, damage)
        test_rows.append([_path_in_csv(draw, f"{i}.JPEG", damage)])
    train_header = _header(draw, ["class_name", "image_path", "target"], damage)
    train_rows = [row + [draw(WEIRD_TEXT)] * (len(train_header) - 3) for row in train_rows]
    files["train.csv"] = _csv_text(draw, train_header, train_rows, damage)
    if test_rows or draw(st.booleans()):
        files["test.csv"] = _csv_text(draw, _header(draw, ["image_path"], damage), test_rows, damage)
    options = {"validation_split": draw(st.sampled_from([0.0, 0.2, 0.5])),
               "bad_images": draw(st.sampled_from(["error", "skip"])), "num_folds": draw(st.sampled_from([None, 2, 3]))}
    return FuzzCase(files, options)


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def check(folder: Path) -> str:
    """Load the case in `folder`; return the outcome ('loaded', 'loaded, 2 skipped', 'error') or raise FuzzFailure."""
    options = json.loads((folder / OPTIONS_FILE).read_text())
    test_csv = folder / "test.csv"
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIME_LIMIT_S)
    try:
        data = load_sketch_dataset(folder / "train", folder / "train.csv", folder / "test",
                                   test_csv if test_csv.exists() else None, **options)
    except SketchDataError as error:
        message = str(error)
        if "\n" in message or len(message) > MAX_MESSAGE or str(folder) not in message:
            raise FuzzFailure(f"unhelpful error ({len(message)} chars): {message[:600]!r}") from error
        return "error"
    except _Hang:
        raise FuzzFailure(f"no result within {TIME_LIMIT_S} s") from None
    except Exception as error:
        raise FuzzFailure(f"traceback: {type(error).__name__}: {str(error)[:600]}") from error
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    skipped = data.counts.get("bad_train_images_skipped", 0)
    return f"loaded, {skipped} skipped" if skipped else "loaded"


def check_case(case: FuzzCase, data_dir: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="fuzz-case-") as folder:
        return check(case.write(Path(folder), data_dir))


def save_regression(case: FuzzCase, error: BaseException) -> Path:
    """Keep a failing case as a folder that tests/sketch_data/test_fuzz_inputs.py replays: files as they are,
    derived images as `<name>.derived.json` recipes."""
    digest = hashlib.sha1(repr(sorted(case.files.items())).encode() + repr(case.options).encode()).hexdigest()[:10]
    folder = REGRESSIONS / f"case_{digest}"
    shutil.rmtree(folder, ignore_errors=True)
    for relative, data in case.files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Derived):
            path.with_name(path.name + DERIVED_SUFFIX).write_text(json.dumps(dataclasses.asdict(data)))
        else:
            path.write_bytes(data)
    (folder / OPTIONS_FILE).write_text(json.dumps(case.options))
    (folder / "failure.txt").write_text(f"{error}\n")
    return folder


def load_regression(folder: Path) -> FuzzCase:
    """The case that `save_regression` saved in `folder`."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in (OPTIONS_FILE, "failure.txt")):
        relative = str(path.relative_to(folder))
        if relative.endswith(DERIVED_SUFFIX):
            recipe = json.loads(path.read_text())
            files[relative.removesuffix(DERIVED_SUFFIX)] = Derived(
                recipe["source"], recipe["png"], recipe["cut"], tuple(tuple(flip) for flip in recipe["flips"]))
        else:
            files[relative] = path.read_bytes()
    return FuzzCase(files, json.loads((folder / OPTIONS_FILE).read_text()))


def run(examples: int, data_dir: Path, seed: int | None = None) -> tuple[Counter, FuzzCase | None, BaseException | None]:
    """Check `examples` generated cases; return outcome counts and the (shrunk) failing case, if any."""
    outcomes, last = Counter(), {}

    @settings(max_examples=examples, deadline=None, database=None, derandomize=seed is None,
              suppress_health_check=list(HealthCheck), print_blob=False, report_multiple_bugs=False)
    @given(cases(real_images(data_dir)))
    def fuzz(case: FuzzCase) -> None:
        try:
            outcomes[check_case(case, data_dir)] += 1
        except FuzzFailure as failure:
            last["case"], last["error"] = case, failure  # hypothesis ends on its shrunk example
            raise

    if seed is not None:
        fuzz = hypothesis_seed(seed)(fuzz)
    try:
        fuzz()
    except FuzzFailure:
        return outcomes, last["case"], last["error"]
    return outcomes, None, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="how many generated cases to check")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="competition-layout folder of real images")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: hypothesis' fixed derandomized order)")
    args = parser.parse_args(argv)
    logging.getLogger("sketch_data").setLevel(logging.ERROR)  # the cases' warnings are expected; outcomes are counted
    start = time.monotonic()
    outcomes, case, error = run(args.examples, args.data, args.seed)
    elapsed = time.monotonic() - start
    print(f"{sum(outcomes.values())} cases in {elapsed:.1f} s: " + ", ".join(f"{n} {o}" for o, n in outcomes.most_common()))
    if case is not None:
        print(f"FAILED: {error}\nsaved as {save_regression(case, error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
