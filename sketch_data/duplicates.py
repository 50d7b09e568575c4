"""Copies of one drawing, whatever was done to them: flips, 90° rotations, a JPEG re-encode, a small rescale.

ImageNet-Sketch padded its small classes "by flipping and rotating the images", so its training set holds such
copies, some across classes and some in the test set. Two images are copies when both tests pass:
- imagehash's perceptual hash (64 bits of the low DCT frequencies) of one is within `max_distance` bits of the hash
  of one of the other's 8 dihedral views (the identity, 3 rotations, 4 reflections): a cheap test of all pairs;
- and the two 32x32 ink thumbnails, the second in its best dihedral view, correlate at `min_correlation` or more.
On sketches the hash alone is not enough: they are mostly white paper, and different drawings of simple shapes
(circles, lollipops) came within 6 bits of each other in quickdraw100, as close as rescaled copies. On a noisy copy
of it the injected copies correlated at 0.94 or more, other drawings at 0.80 or less (docs/data.md,
scripts/compare_duplicate_detectors.py). The pairs join into clusters: each image of a cluster is a copy of
another one of it.

The hashes and thumbnails are kept per set of files (train.csv's, test.csv's) in HF_DATASETS_CACHE/sketch_hashes,
keyed on the files' paths, sizes and modification times, so the doctor and every fold of a grouped run make them
once.
"""

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import datasets
import imagehash
import numpy as np
import PIL.Image
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm.auto import tqdm

from .atomic import atomic_save_npy
from .images import to_rgb
from .keys import files_fingerprint, key_of

logger = logging.getLogger(__name__)
FINGERPRINT_VERSION = 1  # bump when the hash or thumbnail changes, so old files are not reused
MAX_DISTANCE = 8  # bits; these two thresholds were chosen on quickdraw100 (docs/data.md)
MIN_CORRELATION = 0.9
THUMBNAIL = 32  # phash's own input size: the image is reduced to this once, then each view is hashed
T = PIL.Image.Transpose
# the 7 other views of the dihedral group, by the names scripts/make_noisy_copy.py records in injected.csv
DIHEDRAL_OPS = {"hflip": T.FLIP_LEFT_RIGHT, "vflip": T.FLIP_TOP_BOTTOM, "rot90": T.ROTATE_90, "rot180": T.ROTATE_180,
                "rot270": T.ROTATE_270, "transpose": T.TRANSPOSE, "transverse": T.TRANSVERSE}
DIHEDRAL = (None, *DIHEDRAL_OPS.values())  # None: the image itself, whose hash is the one compared with the others
PAIRS_PER_BLOCK = 10_000  # candidate pairs whose thumbnails are compared at once: ~400 MB
ROWS_PER_BLOCK = 256  # rows compared at once: 256 x 25,000 x 8 float32 = 200 MB


@dataclass
class Fingerprints:
    """Per image: the hash of each dihedral view (uint64, (images, 8)) and a 32x32 grey thumbnail (uint8)."""

    hashes: np.ndarray
    thumbnails: np.ndarray


@dataclass
class Copies:
    """Pairs of copies (i, j: indices into the first and second set of images, i < j within one set) and the
    correlation of their thumbnails in the best view, which is the pair's score."""

    pairs: np.ndarray  # (pairs, 2) int
    scores: np.ndarray  # (pairs,) float


def fingerprint(file: str) -> tuple[np.ndarray, np.ndarray]:
    """The 64-bit perceptual hash of each of the image's 8 dihedral views, and its 32x32 grey thumbnail."""
    with PIL.Image.open(file) as image:
        image.draft("L", (2 * THUMBNAIL, 2 * THUMBNAIL))  # JPEG: decode at 1/2..1/8 scale, 5-10x faster
        # as training sees it: transparent areas on white, 16-bit scaled, EXIF rotation applied
        small = to_rgb(image).convert("L").resize((THUMBNAIL, THUMBNAIL), PIL.Image.Resampling.LANCZOS)
    views = [small if op is None else small.transpose(op) for op in DIHEDRAL]
    return np.array([_as_int(imagehash.phash(view)) for view in views], dtype=np.uint64), np.asarray(small)


def fingerprints_of(files: list[str], desc: str = "Fingerprinting images", num_threads: int = 4,
                    cache_dir: Path | None = None) -> Fingerprints:
    """The files' fingerprints, read from the cache when these files (paths, sizes, times) were seen before."""
    folder = Path(cache_dir or Path(datasets.config.HF_DATASETS_CACHE) / "sketch_hashes")
    key = key_of(FINGERPRINT_VERSION, files_fingerprint([os.path.abspath(f) for f in files]))
    paths = {name: folder / f"{name}-{key}.npy" for name in ("hashes", "thumbnails")}
    cached = _readable(paths, len(files))
    if cached:
        logger.info("%s: reusing the fingerprints of %d images from %s", desc, len(files), folder)
        return cached
    with ThreadPoolExecutor(num_threads) as pool:  # Pillow releases the GIL while it decodes and resizes
        found = list(tqdm(pool.map(fingerprint, files), total=len(files), desc=desc, unit="img"))
    prints = Fingerprints(np.stack([h for h, _ in found]).reshape(-1, len(DIHEDRAL)),
                          np.stack([t for _, t in found]).reshape(-1, THUMBNAIL, THUMBNAIL))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, path in paths.items():
            atomic_save_npy(path, getattr(prints, name))
    except OSError as error:  # a read-only cache: only the next run's shortcut is lost
        logger.warning("Could not keep the image fingerprints in %s (%s): the next run makes them again.", folder,
                       error)
    return prints


def find_copies(first: Fingerprints, second: Fingerprints | None = None, max_distance: int = MAX_DISTANCE,
                min_correlation: float = MIN_CORRELATION) -> Copies:
    """The copies within one set (`second` None: pairs i < j) or between two sets (e.g. train and test)."""
    other = first if second is None else second
    candidates = _close_hashes(first.hashes, other.hashes, max_distance, same_set=second is None)
    scores = np.concatenate([np.zeros(0, np.float32)] + [  # in blocks: ~40 KB per candidate pair while compared
        best_correlation(first.thumbnails[block[:, 0]], other.thumbnails[block[:, 1]])
        for block in np.array_split(candidates, max(1, len(candidates) // PAIRS_PER_BLOCK))])
    keep = scores >= min_correlation
    return Copies(candidates[keep], scores[keep])


def clusters_of(copies: Copies, images: int) -> np.ndarray:
    """The cluster id of each of `images` images of one set: an image and its copies share one."""
    graph = coo_matrix((np.ones(len(copies.pairs)), (copies.pairs[:, 0], copies.pairs[:, 1])), shape=(images, images))
    return connected_components(graph, directed=False)[1]


def duplicate_groups(files: list[str]) -> np.ndarray:
    """The cluster id of each training file, for a split that keeps copies together (sketch_data/splits.py)."""
    prints = fingerprints_of(files, desc="Fingerprinting training images for --group_duplicates")
    return clusters_of(find_copies(prints), len(files))


def _close_hashes(rows: np.ndarray, columns: np.ndarray, max_distance: int, same_set: bool) -> np.ndarray:
    """Pairs (row, column) where one's plain hash is within `max_distance` bits of some view of the other. Between
    two sets both directions are compared (the hash of a flipped image is not exactly the flipped bits of its hash);
    within one set, all ordered pairs already are."""
    found = set(_one_way(rows, columns, max_distance))
    if same_set:
        found = {(min(i, j), max(i, j)) for i, j in found if i != j}
    else:
        found |= {(i, j) for j, i in _one_way(columns, rows, max_distance)}
    return np.array(sorted(found), dtype=np.int64).reshape(-1, 2)


def hash_distances(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(rows, columns): the bits between each row image's plain hash and the closest view of each column image's."""
    return np.concatenate([block for _, block in _distance_blocks(rows, columns)])


def _one_way(rows: np.ndarray, columns: np.ndarray, max_distance: int):
    for start, distance in _distance_blocks(rows, columns):
        for i, j in zip(*np.nonzero(distance <= max_distance)):
            yield start + int(i), int(j)


def _distance_blocks(rows: np.ndarray, columns: np.ndarray):
    """Hamming distances as a matrix product of bit vectors, |a| + |b| - 2 a.b (exact in float32), in torch on every
    core: 25,000 x 25,000 x 8 views took 30 s this way and 41 s as numpy's XOR and popcount, on 2 busy cores.
    Yields (first row, distances) per block of rows."""
    column_bits = torch.from_numpy(_bits(columns.reshape(-1)))
    column_counts = column_bits.sum(dim=1)
    row_bits = torch.from_numpy(_bits(rows[:, 0]))
    for start in range(0, len(rows), ROWS_PER_BLOCK):
        block = row_bits[start:start + ROWS_PER_BLOCK]
        distance = torch.addmm(column_counts.expand(len(block), -1), block, column_bits.T, alpha=-2)
        distance += block.sum(dim=1, keepdim=True)
        yield start, distance.view(len(block), len(columns), len(DIHEDRAL)).amin(dim=2).to(torch.uint8).numpy()


def _bits(hashes: np.ndarray) -> np.ndarray:
    return np.unpackbits(hashes.astype(np.uint64).view(np.uint8).reshape(-1, 8), axis=1).astype(np.float32)


def best_correlation(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per pair, the largest correlation of the first thumbnail's ink with any dihedral view of the second's."""
    a = _normalised_ink(first)
    views = [second, *(np.rot90(second, k, axes=(1, 2)) for k in (1, 2, 3))]
    views += [np.swapaxes(view, 1, 2) for view in views]  # the four rotations' transposes: the reflections
    return np.max([(a * _normalised_ink(view)).sum(axis=(1, 2)) for view in views], axis=0)


def _normalised_ink(thumbnails: np.ndarray) -> np.ndarray:
    ink = 255.0 - thumbnails.astype(np.float32)
    ink -= ink.mean(axis=(1, 2), keepdims=True)
    return ink / (np.linalg.norm(ink, axis=(1, 2), keepdims=True) + 1e-6)


def _readable(paths: dict[str, Path], images: int) -> Fingerprints | None:
    try:
        prints = Fingerprints(**{name: np.load(path) for name, path in paths.items()})
    except (OSError, ValueError):  # not there yet, or cut short: make them again
        return None
    return prints if len(prints.hashes) == len(prints.thumbnails) == images else None


def _as_int(image_hash: imagehash.ImageHash) -> int:
    return int("".join("1" if bit else "0" for bit in image_hash.hash.flatten()), 2)
