"""Decode and resize every image once, into Arrow files that later runs reuse (`--preresize_cache DIR`).

Training and evaluation both start with the processor's eval resize (shorter side to image_size / crop_pct);
the cache stores `resize(to_rgb(image))` losslessly (PNG in Arrow; one channel when all three are equal), so
that step becomes a no-op on the cached image and every later transform gives exactly the tensors of an
uncached run, while data loading no longer decodes a large JPEG and resamples it for every epoch.

There is one cache file per set of images and resize: train.csv's images (however a fold, a seed or
--validation_split divides them) and test.csv's, keyed on the files' paths, sizes and modification times.
Each cached image keeps its original's path beside its bytes, so that what is computed from the cache (the
frozen-backbone features, sketch_train/features.py) is keyed on the files too, without reading the bytes.
"""

import contextlib
import fcntl
import io
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import datasets
import PIL.Image
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, Features, Image, concatenate_datasets
from PIL import ImageChops
from torchvision import transforms
from torchvision.transforms import v2

from .dataset import LABELLED
from .images import to_rgb
from .keys import files_fingerprint, key_of
from .processes import multiprocess_children_die_with_parent

logger = logging.getLogger(__name__)
Resize = transforms.Resize | v2.Resize  # timm's processors build the v1 one
CACHE_VERSION = 3  # bump when what is stored changes, so old files are not reused
MIN_IMAGES_PER_PROCESS = 1000  # below this, starting processes costs more than it saves
OFF = ("off", "none", "")
LOCK_FILE = ".build.lock"
PNG_LEVEL = 1  # zlib level: measured against 6, 0 and raw arrays in docs/speed.md (scripts/benchmark_scale.py)
# tempfile.NamedTemporaryFile's names, which datasets.map writes its cache files under until they are complete
DATASETS_TEMPORARY = re.compile(r"^tmp[a-z0-9_]{8}$")


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
    """Every split with its `image` column replaced by the cached, pre-resized images (built where missing).

    The cache holds one file per set of images, not per split: train.csv's images (training and validation
    together, however a fold or seed splits them) and test.csv's. Every fold, seed and rerun reads the same file.
    """
    resize = eval_resize(processor)
    cached = DatasetDict()
    for names in _image_sets(splits):
        whole = concatenate_datasets([splits[name].with_format(None) for name in names])
        files = source_files(whole)
        order = sorted(range(len(files)), key=files.__getitem__)  # the cache's rows: its files, sorted
        images = preresized([files[row] for row in order], resize, cache_dir)
        # Labels and paths come from the current CSVs, never from the cache; they are small, so put in the
        # cache's row order in memory, and the image column (large) is read from the cache file as it is.
        others = whole.remove_columns("image")
        others = Dataset.from_pandas(others.to_pandas().iloc[order], features=others.features, preserve_index=False)
        everything = concatenate_datasets([images, others], axis=1)
        row_of = {row: position for position, row in enumerate(order)}
        start = 0
        for name in names:
            cached[name] = everything.select([row_of[row] for row in range(start, start + len(splits[name]))])
            start += len(splits[name])
    return cached


def _image_sets(splits: DatasetDict) -> list[list[str]]:
    """The splits grouped by the CSV their images come from: the labelled ones together, then each other one."""
    labelled = [name for name in LABELLED if name in splits]
    return [names for names in [labelled] + [[name] for name in splits if name not in LABELLED] if names]


def source_files(dataset: Dataset) -> list[str]:
    """The image file of each row: the original's path, which pre-resized images keep beside their bytes. Read from
    the path field alone: taking the rows' whole `image` column would copy every PNG (gigabytes at 448 px)."""
    paths = pc.struct_field(dataset.data.column("image"), "path")
    if dataset._indices is not None:  # select, sort and shuffle keep their rows as indices into the table
        paths = paths.take(dataset._indices.column(0))
    return paths.to_pylist()


def eval_resize(processor) -> Resize:
    """The first step of the processor's eval transform, which every later step works on."""
    first = processor.val_transforms.transforms[0]
    if not _starts_with_resize(processor):
        raise ValueError(f"the eval transform starts with {first}, not a Resize: run with --preresize_cache off.")
    return first


def _starts_with_resize(processor) -> bool:
    return isinstance(processor.val_transforms.transforms[0], (transforms.Resize, v2.Resize))


def preresized(files: list[str], resize: Resize, cache_dir: str | Path) -> Dataset:
    """`image` = resize(to_rgb(file)) for each file, read from `cache_dir` when these files were done before."""
    path = Path(cache_dir) / f"preresized-{_cache_key(files, resize)}.arrow"
    path.parent.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0))
    # datasets writes each Arrow file under a tmpXXXXXXXX name and renames it when complete, so a killed build
    # never leaves a half cache file, only those temporaries: removed here when no other build is running.
    # It does not fsync, so after a power cut a renamed file can still be short: such files are rebuilt.
    multiprocess_children_die_with_parent()  # no orphans holding decoded images after a kill -9
    with building_in(path.parent):
        cached = [file for file in sorted(path.parent.glob(f"{path.stem}*.arrow")) if _readable(file)]
        if cached:  # one file, or one per process that built it
            logger.info("Reusing pre-resized images from %s", path)
        originals = Dataset.from_dict({"image": files}, features=Features({"image": Image(decode=False)}))
        images = originals.map(
            _resize_batch, batched=True, batch_size=100, fn_kwargs={"resize": resize},
            features=Features({"image": Image()}),
            cache_file_name=str(path), num_proc=min(cores, len(files) // MIN_IMAGES_PER_PROCESS) or None,
            desc=f"Pre-resizing {len(files)} images to {resize.size}",
        )
        for file in path.parent.glob(f"{path.stem}*.arrow"):
            if file not in cached:  # newly built: make it durable before a later run trusts it
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
    return images


@contextlib.contextmanager
def building_in(cache_dir: Path) -> Iterator[None]:
    """Hold a shared lock on the cache folder while building; first remove what killed builds left behind.

    flock locks go with their process, even on SIGKILL, so getting the lock exclusively proves that no build is
    running in this folder, and every temporary file in it is an orphan. Another run building at the same time
    holds its shared lock, and we leave its temporaries alone.
    """
    with open(cache_dir / LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another build is running: its temporaries are in use
        else:
            _remove_stale_temporaries(cache_dir)
        fcntl.flock(lock, fcntl.LOCK_SH)  # from exclusive: a conversion; otherwise waits for another's clean-up
        yield


def _readable(file: Path) -> bool:
    """Whether a cache file reads to its end; one that does not (cut by a power cut) is deleted, to be rebuilt."""
    try:
        with pa.memory_map(str(file)) as source:
            pa.ipc.open_stream(source).read_all()
        return True
    except (pa.ArrowInvalid, OSError) as error:
        logger.warning("Rebuilding %s: it does not read (%s), e.g. cut short by a power cut.", file, error)
        file.unlink(missing_ok=True)
        return False


def _remove_stale_temporaries(cache_dir: Path) -> None:
    stale = [file for file in cache_dir.iterdir() if DATASETS_TEMPORARY.match(file.name) and file.is_file()]
    for file in stale:
        file.unlink(missing_ok=True)
    if stale:
        logger.info("Removed %d temporary file(s) that an interrupted pre-resize left in %s", len(stale), cache_dir)


def _resize_batch(batch: dict, resize: Resize) -> dict:
    """Each image as PNG bytes, beside its original's path: the feature cache keys on the files, not on bytes."""
    return {"image": [{"bytes": png_bytes(resized_image(image["path"], resize)), "path": image["path"]}
                      for image in batch["image"]]}


def resized_image(file: str, resize: Resize) -> PIL.Image.Image:
    """What the cache stores of `file`, before encoding."""
    try:
        with PIL.Image.open(file) as image:
            return _gray_if_exactly_gray(resize(to_rgb(image)))
    except Exception as error:  # changed since the data check; PIL's own messages do not name the file
        error.add_note(f"while pre-resizing {file}")
        raise


def png_bytes(image: PIL.Image.Image, level: int = PNG_LEVEL) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()


def _gray_if_exactly_gray(image: PIL.Image.Image) -> PIL.Image.Image:
    """One channel where all three are equal (most sketches): half the PNG bytes to store and inflate, and
    to_rgb gives back exactly the same RGB pixels."""
    red, green, blue = image.split()
    same = ImageChops.difference(red, green).getbbox() is None and ImageChops.difference(green, blue).getbbox() is None
    return red if same else image


def _cache_key(files: list[str], resize: Resize) -> str:
    """Changes when any image file (path, size, modification time) or the resize changes."""
    return key_of(CACHE_VERSION, PNG_LEVEL, repr(resize), files_fingerprint(files))
