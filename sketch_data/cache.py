"""Decode and resize every image once, into Arrow files that later runs reuse (`--preresize_cache DIR`).

Training and evaluation both start with the processor's eval resize (shorter side to image_size / crop_pct);
the cache stores `resize(to_rgb(image))` losslessly (PNG in Arrow; one channel when all three are equal), so
that step becomes a no-op on the cached image and every later transform gives exactly the tensors of an
uncached run, while data loading no longer decodes a large JPEG and resamples it for every epoch.
"""

import logging
import os
from pathlib import Path

import datasets
import PIL.Image
from datasets import Dataset, DatasetDict, Features, Image, concatenate_datasets
from datasets.fingerprint import Hasher
from PIL import ImageChops
from torchvision import transforms
from torchvision.transforms import v2

from .images import to_rgb

logger = logging.getLogger(__name__)
Resize = transforms.Resize | v2.Resize  # timm's processors build the v1 one
CACHE_VERSION = 2  # bump when what is stored changes, so old files are not reused
MIN_IMAGES_PER_PROCESS = 1000  # below this, starting processes costs more than it saves
OFF = ("off", "none", "")


def preresize_folder(option: str, augment_policy: str, processor) -> Path | None:
    """Where `--preresize_cache option` keeps the pre-resized images; None when there is to be no cache.

    'auto' uses the datasets cache, unless a cache cannot give the same training inputs: timm's own augmentation
    crops the original image at random, and an eval transform without a leading resize has nothing to cache.
    """
    if option.lower() in OFF:
        return None
    if option != "auto":
        return Path(option)
    if augment_policy == "timm" or not _starts_with_resize(processor):
        logger.info("No pre-resized cache: %s.", "--augment timm crops the original images" if augment_policy == "timm"
                    else "the eval transform does not start with a resize")
        return None
    return Path(datasets.config.HF_DATASETS_CACHE) / "sketch_preresized"


def preresize_splits(splits: DatasetDict, processor, cache_dir: str | Path) -> DatasetDict:
    """Every split with its `image` column replaced by the cached, pre-resized images (built where missing)."""
    resize = eval_resize(processor)
    return DatasetDict({name: preresized(split, resize, cache_dir) for name, split in splits.items()})


def eval_resize(processor) -> Resize:
    """The first step of the processor's eval transform, which every later step works on."""
    first = processor.val_transforms.transforms[0]
    if not _starts_with_resize(processor):
        raise ValueError(f"the eval transform starts with {first}, not a Resize: run with --preresize_cache off.")
    return first


def _starts_with_resize(processor) -> bool:
    return isinstance(processor.val_transforms.transforms[0], (transforms.Resize, v2.Resize))


def preresized(dataset: Dataset, resize: Resize, cache_dir: str | Path) -> Dataset:
    """`dataset` with `image` = resize(to_rgb(image)), read from `cache_dir` when these files were done before."""
    path = Path(cache_dir) / f"preresized-{_cache_key(dataset, resize)}.arrow"
    path.parent.mkdir(parents=True, exist_ok=True)
    if list(path.parent.glob(f"{path.stem}*.arrow")):  # one file, or one per process that built it
        logger.info("Reusing pre-resized images from %s", path)
    cores = len(os.sched_getaffinity(0))
    images = dataset.select_columns(["image"]).map(
        _resize_batch, batched=True, batch_size=100, fn_kwargs={"resize": resize},
        features=Features({"image": Image()}),
        cache_file_name=str(path), num_proc=min(cores, len(dataset) // MIN_IMAGES_PER_PROCESS) or None,
        desc=f"Pre-resizing {len(dataset)} images to {resize.size}",
    )
    # Labels and paths come from the current CSVs, never from the cache.
    return concatenate_datasets([images, dataset.remove_columns("image")], axis=1)


def _resize_batch(batch: dict, resize: Resize) -> dict:
    return {"image": [_gray_if_exactly_gray(resize(to_rgb(image))) for image in batch["image"]]}


def _gray_if_exactly_gray(image: PIL.Image.Image) -> PIL.Image.Image:
    """One channel where all three are equal (most sketches): half the PNG bytes to store and inflate, and
    to_rgb gives back exactly the same RGB pixels."""
    red, green, blue = image.split()
    same = ImageChops.difference(red, green).getbbox() is None and ImageChops.difference(green, blue).getbbox() is None
    return red if same else image


def _cache_key(dataset: Dataset, resize: Resize) -> str:
    """Changes when any image file (path, size, modification time) or the resize changes."""
    files = [image["path"] for image in dataset.cast_column("image", Image(decode=False))["image"]]
    stats = [(os.stat(file).st_size, os.stat(file).st_mtime_ns) for file in files]
    return Hasher.hash([CACHE_VERSION, repr(resize), files, stats])
