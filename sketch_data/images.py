"""Decode any image the competition data may hold into the RGB sketch the model expects."""

import warnings
from concurrent.futures import ThreadPoolExecutor

from PIL import Image, ImageOps
from tqdm.auto import tqdm

WHITE = (255, 255, 255)
# Training runs at 128-448 px; a 20000x50 strip would otherwise be resized to ~90000 px wide.
MAX_SIDE = 4096
# Decoding at 1/8 scale still reads the whole JPEG stream, so truncation is caught at a fraction of the cost.
CHECK_DRAFT_SIZE = (64, 64)


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
    if image.mode == "P" or "A" in image.getbands() or image.mode == "LA":
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def image_problem(path: str) -> str | None:
    """Return why `path` cannot be used as a training image, or None if it decodes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.draft("RGB", CHECK_DRAFT_SIZE)
                image.load()
                width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        return f"too many pixels for a safe decode ({error})"
    except Exception as error:  # PIL raises many types for broken files; all mean "unusable"
        return f"cannot be decoded: {type(error).__name__}: {error}"
    if min(width, height) < 1:
        return "has no pixels"
    return None


def find_bad_images(files: list[str], num_threads: int = 4, desc: str = "Checking images") -> dict[str, str]:
    """Decode every file once (Pillow releases the GIL, so threads overlap) and map each bad one to its problem."""
    with ThreadPoolExecutor(num_threads) as pool:
        problems = list(tqdm(pool.map(image_problem, files), total=len(files), desc=desc, unit="img"))
    return {f: p for f, p in zip(files, problems) if p is not None}
