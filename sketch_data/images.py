"""Decode any image the competition data may hold into the RGB sketch the model expects."""

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

WHITE = (255, 255, 255)
# Training runs at 128-448 px; a 20000x50 strip would otherwise be resized to ~90000 px wide.
MAX_SIDE = 4096
# Decoding at 1/8 scale still reads the whole JPEG stream, so truncation is caught at a fraction of the cost.
CHECK_DRAFT_SIZE = (64, 64)
# Images that decode but can hardly hold a sketch: kept (they are valid files), but counted and listed.
MIN_SIDE = 8
MAX_ASPECT = 20


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


def scan_images(files: list[str], num_threads: int = 4, desc: str = "Checking images") -> ImageScan:
    """Decode every file once (Pillow releases the GIL, so threads overlap) and report the bad and odd ones."""
    with ThreadPoolExecutor(num_threads) as pool:
        found = list(tqdm(pool.map(inspect_image, files), total=len(files), desc=desc, unit="img"))
    return ImageScan(
        bad={f: bad for f, (bad, _) in zip(files, found) if bad},
        odd_size={f: odd for f, (_, odd) in zip(files, found) if odd},
    )
