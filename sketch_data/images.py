"""Decode any image the competition data may hold into the RGB sketch the model expects."""

import json
import logging
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from .atomic import atomic_write
from .keys import key_of, size_and_time

logger = logging.getLogger(__name__)

WHITE = (255, 255, 255)
# Training runs at 128-448 px; a 20000x50 strip would otherwise be resized to ~90000 px wide.
MAX_SIDE = 4096
# Decoding at 1/8 scale still reads the whole JPEG stream, so truncation is caught at a fraction of the cost.
CHECK_DRAFT_SIZE = (64, 64)
# Images that decode but can hardly hold a sketch: kept (they are valid files), but counted and listed.
MIN_SIDE = 8
MAX_ASPECT = 20
CHECK_RECORD_VERSION = 1  # bump when inspect_image's verdicts change, so old records are not reused


def to_rgb(image: Image.Image) -> Image.Image:
    """Apply EXIF rotation and return RGB, with transparent areas turned white (sketches are black on white)."""
    image = ImageOps.exif_transpose(image)
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE))
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        scale = 1 / 256 if image.getextrema()[1] > 255 else 1
        image = image.convert("F").point(lambda v: v * scale).convert("L")
    if image.mode == "P" or "A" in image.getbands():
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def inspect_image(path: str) -> tuple[str | None, str | None]:
    """Decode `path` once and return (why it is unusable, why its size is odd); None where there is nothing to say."""
    if os.path.getsize(path) == 0:
        return "is empty (0 bytes)", None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.draft("RGB", CHECK_DRAFT_SIZE)
                image.load()
                width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        return f"is a possible decompression bomb ({error}); re-save it at a sensible size", None
    except UnidentifiedImageError:
        return "is not an image file Pillow can read", None
    except Exception as error:  # PIL raises many types for broken files; all mean "unusable"
        return f"is truncated or corrupt ({type(error).__name__}: {error})", None
    return None, _odd_size(width, height)


def _odd_size(width: int, height: int) -> str | None:
    if min(width, height) < MIN_SIDE:
        return f"is only {width}x{height} px"
    if max(width, height) > MAX_ASPECT * min(width, height):
        return f"is a {width}x{height} px strip"
    return None


@dataclass
class ImageScan:
    """What a scan of image files found: unusable files and odd-sized ones, each with the reason."""

    bad: dict[str, str] = field(default_factory=dict)
    odd_size: dict[str, str] = field(default_factory=dict)


def scan_images(files: list[str], num_threads: int = 4, desc: str = "Checking images",
                remember_in: Path | None = None) -> ImageScan:
    """Decode every file once (Pillow releases the GIL, so threads overlap) and report the bad and odd ones.

    With `remember_in` (a folder), what was found is kept there, and a later scan of the same files decodes only
    those whose size or modification time changed since (a rerun, another fold: ~3 ms per JPEG otherwise).
    """
    start = time.perf_counter()
    record = _record_file(files, remember_in) if remember_in else None
    known = _read_record(record)
    stats = {file: size_and_time(file) for file in files}
    todo = [file for file in files if file not in known or tuple(known[file][:2]) != stats[file]]
    with ThreadPoolExecutor(num_threads) as pool:
        found = dict(zip(todo, tqdm(pool.map(inspect_image, todo), total=len(todo), desc=desc, unit="img",
                                    disable=not todo)))
    results = {file: found[file] if file in found else tuple(known[file][2:]) for file in files}
    if record is not None:
        if todo:  # else the record says it all already
            _write_record(record, {file: [*stats[file], *results[file]] for file in files if stats[file]})
        logger.info("%s: decoded %d image(s) in %.1f s; %d unchanged since the last check were not decoded again.",
                    desc, len(todo), time.perf_counter() - start, len(files) - len(todo))
    return ImageScan(
        bad={f: bad for f, (bad, _) in results.items() if bad},
        odd_size={f: odd for f, (_, odd) in results.items() if odd},
    )


def _record_file(files: list[str], folder: Path) -> Path:
    """One record per set of files (train.csv's, test.csv's)."""
    return folder / f"{key_of(CHECK_RECORD_VERSION, sorted(os.path.abspath(file) for file in files))}.json"


def _read_record(record: Path | None) -> dict[str, list]:
    if record is None or not record.is_file():
        return {}
    try:
        return json.loads(record.read_text())
    except (OSError, ValueError) as error:
        logger.warning("Checking every image again: the record of the last check, %s, does not read (%s).", record,
                       error)
        return {}


def _write_record(record: Path, entries: dict[str, list]) -> None:
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(record, "w") as file:
            json.dump(entries, file)
    except OSError as error:  # a read-only cache: the check is done, only the next run's shortcut is lost
        logger.warning("Could not keep what the image check found in %s (%s): the next run checks every image "
                       "again.", record, error)
