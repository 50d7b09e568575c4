"""Unusable files are caught with the reason; every image mode reaches the model as the same RGB sketch."""

import io
import struct
import zlib

import numpy as np
import pytest
from datasets import Dataset, Features
from datasets import Image as ImageFeature
from PIL import Image, ImageDraw, ImageOps

from sketch_data.images import MAX_SIDE, inspect_image, scan_images, to_rgb

JPEG_TOLERANCE = 8  # mean absolute difference, in 0..255, that a quality-95 JPEG round trip stays under


def sketch() -> Image.Image:
    """Black strokes on white, the RGB reference every other mode must come back as."""
    image = Image.new("RGB", (64, 48), "white")
    draw = ImageDraw.Draw(image)
    draw.line([(5, 5), (60, 40)], fill="black", width=4)
    draw.ellipse([10, 20, 30, 40], outline="black", width=3)
    return image


def transparent_black(mode: str) -> Image.Image:
    """The sketch as opaque black strokes on a transparent *black* background: a plain convert("RGB") is all black."""
    strokes = ImageOps.invert(sketch().convert("L"))
    black = Image.new("L", strokes.size, 0)
    return Image.merge("LA", (black, strokes)) if mode == "LA" else Image.merge("RGBA", (black, black, black, strokes))


def palette_with_transparency() -> Image.Image:
    """Index 0 (background) is transparent and black in the palette, index 1 is the strokes."""
    image = Image.fromarray((np.asarray(sketch().convert("L")) < 128).astype(np.uint8), "P")
    image.putpalette([0, 0, 0, 0, 0, 0])
    image.info["transparency"] = 0
    return image


def exif_rotated() -> tuple[Image.Image, Image.Exif]:
    """Pixels stored rotated, with EXIF Orientation 6 ("rotate 90° clockwise to display")."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return sketch().transpose(Image.Transpose.ROTATE_90), exif


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def variants() -> dict[str, tuple[bytes, int]]:
    """Each mode of the issue, encoded as a file would hold it, with the tolerance its format needs."""
    reference = sketch()
    rotated, exif = exif_rotated()
    sixteen_bit = Image.fromarray(np.asarray(reference.convert("L")).astype(np.uint16) * 257)
    assert sixteen_bit.mode == "I;16"
    return {
        "RGB": (encoded(reference, "PNG"), 0),
        "L": (encoded(reference.convert("L"), "PNG"), 0),
        "LA": (encoded(transparent_black("LA"), "PNG"), 0),
        "RGBA": (encoded(transparent_black("RGBA"), "PNG"), 0),
        "P": (encoded(palette_with_transparency(), "PNG", transparency=0), 0),
        "CMYK": (encoded(reference.convert("CMYK"), "JPEG", quality=95), JPEG_TOLERANCE),
        "I;16": (encoded(sixteen_bit, "PNG"), 0),
        "EXIF-rotated": (encoded(rotated, "JPEG", quality=95, exif=exif), JPEG_TOLERANCE),
    }


@pytest.mark.parametrize("name", list(variants()))
def test_every_mode_reaches_the_model_as_the_same_rgb_sketch(tmp_path, name):
    data, tolerance = variants()[name]
    path = tmp_path / f"{name}.JPEG"  # the competition names every file .JPEG, whatever it holds
    path.write_bytes(data)
    # Decode the way training does: the datasets Image feature, then to_rgb (the first step of every transform).
    image = Dataset.from_dict({"image": [str(path)]}, features=Features({"image": ImageFeature()}))[0]["image"]
    out = np.asarray(to_rgb(image), dtype=int)
    reference = np.asarray(sketch(), dtype=int)
    assert out.shape == reference.shape
    assert np.abs(out - reference).mean() <= tolerance
    if name in ("LA", "RGBA", "P"):  # transparent background -> white, exactly
        assert (out[reference == 255] == 255).all()


def test_png_saved_as_jpeg_is_accepted(tmp_path):
    path = tmp_path / "really_a_png.JPEG"
    path.write_bytes(encoded(sketch(), "PNG"))
    assert inspect_image(str(path)) == (None, None)
    assert np.array_equal(np.asarray(to_rgb(Image.open(path))), np.asarray(sketch()))


def decompression_bomb() -> bytes:
    """A valid 8x8 PNG whose header claims 100000x100000 px: Pillow refuses it before decoding anything."""
    png = bytearray(encoded(Image.new("L", (8, 8)), "PNG"))
    header = bytearray(png[12:29])  # "IHDR" + width, height, ...
    header[4:12] = struct.pack(">II", 100_000, 100_000)
    png[12:29] = header
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(header)))
    return bytes(png)


def unusable_files() -> dict[str, bytes]:
    jpeg = encoded(sketch(), "JPEG", quality=95)
    return {
        "truncated.JPEG": jpeg[: len(jpeg) // 2],
        "empty.JPEG": b"",
        "text.JPEG": b"not an image, just text\n",
        "bomb.JPEG": decompression_bomb(),
    }


@pytest.mark.parametrize(
    "name, reason",
    [
        ("truncated.JPEG", "is truncated or corrupt (OSError: image file is truncated"),
        ("empty.JPEG", "is empty (0 bytes)"),
        ("text.JPEG", "is not an image file Pillow can read"),
        ("bomb.JPEG", "is a possible decompression bomb (Image size (10000000000 pixels) exceeds limit of"),
    ],
)
def test_unusable_files_are_caught_with_the_reason(tmp_path, name, reason):
    path = tmp_path / name
    path.write_bytes(unusable_files()[name])
    problem, odd = inspect_image(str(path))
    assert problem.startswith(reason)
    assert odd is None


def test_pillow_limit_is_what_decides_a_bomb(tmp_path, monkeypatch):
    """A genuine 64x48 image counts as a bomb once Image.MAX_IMAGE_PIXELS is below its size (warning zone included)."""
    path = tmp_path / "small.JPEG"
    sketch().save(path, "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 48 - 1)  # 1x over: only a warning in Pillow, an error here
    assert inspect_image(str(path))[0].startswith("is a possible decompression bomb")


@pytest.mark.parametrize(
    "size, note", [((1, 1), "is only 1x1 px"), ((20000, 50), "is a 20000x50 px strip"), ((64, 48), None)]
)
def test_odd_sizes_decode_and_are_noted(tmp_path, size, note):
    path = tmp_path / "odd.JPEG"
    Image.new("L", size, 255).save(path, "PNG")
    assert inspect_image(str(path)) == (None, note)
    rgb = to_rgb(Image.open(path))
    assert rgb.mode == "RGB" and max(rgb.size) <= MAX_SIDE


def test_scan_reports_bad_and_odd_files_by_path(tmp_path):
    files = {**unusable_files(), "ok.JPEG": encoded(sketch(), "PNG"), "dot.JPEG": encoded(Image.new("L", (1, 1)), "PNG")}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    scan = scan_images([str(tmp_path / name) for name in files])
    assert sorted(scan.bad) == sorted(str(tmp_path / name) for name in unusable_files())
    assert scan.odd_size == {str(tmp_path / "dot.JPEG"): "is only 1x1 px"}


def test_a_rescan_decodes_only_the_files_that_changed(tmp_path, monkeypatch, caplog):
    from sketch_data import images

    record = tmp_path / "checked"
    files = []
    for n in range(4):
        files.append(str(tmp_path / f"{n}.png"))
        Image.new("RGB", (40, 30), "white").save(files[-1])
    decoded = []
    monkeypatch.setattr(images, "inspect_image", lambda path: decoded.append(path) or inspect_image(path))
    caplog.set_level("INFO", logger="sketch_data.images")
    assert scan_images(files, remember_in=record).bad == {} and len(decoded) == 4
    decoded.clear()
    assert scan_images(files, remember_in=record).bad == {} and decoded == []
    assert "decoded 0 image(s)" in caplog.text and "4 unchanged since the last check" in caplog.text
    with open(files[2], "r+b") as file:  # the same file, cut short: it must be checked again and caught
        file.truncate(20)
    scan = scan_images(files, remember_in=record)
    assert decoded == [files[2]] and list(scan.bad) == [files[2]]
    decoded.clear()
    assert list(scan_images(files, remember_in=record).bad) == [files[2]] and decoded == []  # remembered as bad too
    assert scan_images(files).bad and sorted(decoded) == sorted(files)  # without remember, every file is decoded
