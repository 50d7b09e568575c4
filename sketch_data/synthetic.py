"""Write a seeded, synthetic sketch data set of the competition's size, in the competition's layout.

For timing and scaling runs at the real size (500 classes, 15,021 train and 10,014 test images of a few hundred
pixels a side) on machines without the real data. Each class is a prototype of 3-7 strokes (Bézier curves,
polylines, ellipses and arcs, zig-zags); each image draws it through its own random affine map, point jitter, stroke
width and ink, on a canvas of its own size, so classes are learnable but no two images are alike.

Every image is drawn from `np.random.default_rng([seed, split, index])` alone, so the files are byte-identical
whatever the number of worker processes and whatever order they run in.
"""

import functools
import json
import logging
import multiprocessing
import multiprocessing.pool
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from .atomic import atomic_write_csv, atomic_write_text, remove_stale_temporaries
from .processes import die_with_parent

logger = logging.getLogger(__name__)

TRAIN, TEST, PROTOTYPE, TEST_ORDER = 0, 1, 2, 3  # the second word of every seed: streams never overlap
MIN_SIDE, MAX_SIDE = 200, 500
IMAGES_PER_TASK = 100  # per message to a worker process: amortises pickling and scheduling
PARAMETERS_FILE = "synthetic.json"
VERSION = 1  # bump when the drawings change, so that an old set is not taken for a new one
STROKE_KINDS = ("bezier", "polyline", "ellipse", "zigzag")


@dataclass(frozen=True)
class Stroke:
    """One stroke in the unit square: its control points, and for an ellipse the arc it spans (radians)."""

    kind: str
    points: np.ndarray
    arc: tuple[float, float] = (0.0, 2 * np.pi)


@dataclass(frozen=True)
class Job:
    """One image to draw: which random stream it uses, its class, and where it goes."""

    split: int
    index: int
    class_index: int
    path: str


def write_synthetic_competition(root: str | Path, num_classes: int = 500, train_images: int = 15_021,
                                test_images: int = 10_014, seed: int = 0, workers: int | None = None) -> Path:
    """Write train/, train.csv, test/, test.csv and solution.csv under `root`; return `root`.

    A set already there with the same parameters is reused; anything else in `root` is refused, never overwritten.
    """
    _check_arguments(num_classes, train_images, test_images, seed, workers)
    root = Path(root)
    parameters = {"version": VERSION, "num_classes": num_classes, "train_images": train_images,
                  "test_images": test_images, "seed": seed}
    if _reusable(root, parameters):
        logger.info("Reusing the synthetic sketches in %s (made with the same parameters).", root)
        return root
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(root)  # CSV temporaries of a killed build
    # First, so that a killed build is known as ours and redone rather than refused as someone's data.
    atomic_write_text(root / PARAMETERS_FILE, json.dumps(parameters, indent=2) + "\n")

    class_names = [f"sketch_{i:0{max(3, len(str(num_classes - 1)))}d}" for i in range(num_classes)]
    train_classes = _classes_evenly(train_images, num_classes)
    test_classes = np.random.default_rng([seed, TEST_ORDER]).permutation(_classes_evenly(test_images, num_classes))
    train_paths = _train_paths(class_names, train_classes)
    jobs = [Job(TRAIN, i, int(c), f"train/{path}") for i, (c, path) in enumerate(zip(train_classes, train_paths))]
    jobs += [Job(TEST, i, int(c), f"test/{i}.JPEG") for i, c in enumerate(test_classes)]
    _draw_all(root, seed, jobs, workers or len(os.sched_getaffinity(0)))
    _write_csvs(root, class_names, train_classes, train_paths, test_classes)
    logger.info("Wrote %d synthetic training images (%d classes) and %d test images to %s.",
                train_images, num_classes, test_images, root)
    return root


def _check_arguments(num_classes: int, train_images: int, test_images: int, seed: int, workers: int | None) -> None:
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes}: a classification data set needs at least 2 classes.")
    if train_images < num_classes:
        raise ValueError(f"train_images={train_images} is fewer than num_classes={num_classes}: "
                         "every class needs at least one training image.")
    if test_images < 0:
        raise ValueError(f"test_images={test_images}: must be 0 or more.")
    if seed < 0:
        raise ValueError(f"seed={seed}: must be 0 or more.")
    if workers is not None and workers < 1:
        raise ValueError(f"workers={workers}: must be 1 or more (or None for every available core).")


def _reusable(root: Path, parameters: dict) -> bool:
    """True if `root` holds a finished set made with `parameters`; False if it is empty or holds an unfinished
    build of ours with them (to be redone). Raises ValueError for anything else, so real data is never overwritten."""
    if not root.exists():
        return False
    if not root.is_dir():
        raise ValueError(f"{root} is a file, not a folder: pick an empty (or new) folder for the synthetic data.")
    if not any(root.iterdir()):
        return False
    try:
        stored = json.loads((root / PARAMETERS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = None
    if stored is None:
        raise ValueError(f"{root} holds other files (no {PARAMETERS_FILE}, so not a synthetic set made here): "
                         "pick an empty (or new) folder for the synthetic data.")
    if stored != parameters:
        raise ValueError(f"{root} holds a synthetic set made with other parameters ({stored}): pick an empty "
                         "(or new) folder for the synthetic data, or delete this one.")
    return (root / "train.csv").is_file()


def _classes_evenly(count: int, num_classes: int) -> np.ndarray:
    """Class index of each of `count` images, in class order: the first `count % num_classes` classes get one more."""
    sizes = np.full(num_classes, count // num_classes)
    sizes[: count % num_classes] += 1
    return np.repeat(np.arange(num_classes), sizes)


def _train_paths(class_names: list[str], train_classes: np.ndarray) -> list[str]:
    """`<class>/<class>_<k>.JPEG`, k counting within the class."""
    starts = np.searchsorted(train_classes, train_classes)
    return [f"{class_names[c]}/{class_names[c]}_{i - s}.JPEG"
            for i, (c, s) in enumerate(zip(train_classes, starts))]


def _write_csvs(root: Path, class_names: list[str], train_classes: np.ndarray, train_paths: list[str],
                test_classes: np.ndarray) -> None:
    """test.csv and solution.csv, then train.csv."""
    ids = range(len(test_classes))
    solution = pd.DataFrame({"ID": ids, "image_path": [f"{i}.JPEG" for i in ids], "target": test_classes.astype(int)})
    atomic_write_csv(solution[["image_path"]], root / "test.csv")
    atomic_write_csv(solution, root / "solution.csv")
    # Last, and atomically: train.csv says the set is complete, so a build killed before it is redone.
    train = pd.DataFrame({"class_name": [class_names[c] for c in train_classes], "image_path": train_paths,
                          "target": train_classes})
    atomic_write_csv(train, root / "train.csv")


def _draw_all(root: Path, seed: int, jobs: list[Job], workers: int) -> None:
    """Draw every job, in worker processes when there are several workers."""
    for folder in {"test", *(str(Path(job.path).parent) for job in jobs)}:
        (root / folder).mkdir(parents=True, exist_ok=True)
    draw = functools.partial(_draw_job, str(root), seed)
    processes = min(workers, len(jobs))
    # Small sets still reach every worker; big ones go in tasks big enough to amortise the messages.
    chunksize = min(IMAGES_PER_TASK, -(-len(jobs) // max(processes, 1)))
    with tqdm(total=len(jobs), unit="img", desc=f"Drawing {len(jobs)} sketches") as bar:
        if processes <= 1:
            for job in jobs:
                bar.update(draw(job))
            return
        with _pool(processes) as pool:
            for done in pool.imap_unordered(draw, jobs, chunksize=chunksize):
                bar.update(done)


def _pool(processes: int) -> multiprocessing.pool.Pool:
    """Workers that die with this process on Linux, so a kill -9 of the script leaves no orphans drawing on.

    By fork, so that they are this process's children: under forkserver (Python 3.14's default) their parent is
    the server, and die_with_parent would end them at once. Elsewhere die_with_parent does nothing anyway.
    """
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork").Pool(processes, die_with_parent, (os.getpid(),))
    return multiprocessing.Pool(processes)


def _draw_job(root: str, seed: int, job: Job) -> int:
    rng = np.random.default_rng([seed, job.split, job.index])
    image, quality = draw_sketch(_prototype(seed, job.class_index), rng)
    image.convert("RGB").save(os.path.join(root, job.path), "JPEG", quality=quality)
    return 1


@functools.lru_cache(maxsize=1024)
def _prototype(seed: int, class_index: int) -> tuple[Stroke, ...]:
    """The class's strokes, from its own seed: the same in every worker process."""
    rng = np.random.default_rng([seed, PROTOTYPE, class_index])
    # Each class leans towards some stroke kinds, so classes differ in style as well as shape.
    weights = rng.dirichlet(np.ones(len(STROKE_KINDS)))
    strokes = [_random_stroke(rng, rng.choice(STROKE_KINDS, p=weights)) for _ in range(rng.integers(3, 8))]
    return _filling_the_square(strokes)


def _filling_the_square(strokes: list[Stroke]) -> tuple[Stroke, ...]:
    """The strokes scaled (keeping their aspect ratio) and centred to span [0.1, 0.9] on their longer side, so that
    an image's scale alone decides how much of the canvas a drawing covers, as in ImageNet-Sketch's drawings."""
    every = np.vstack([_sampled(s.kind, s.points, s.arc) for s in strokes])
    low, high = every.min(axis=0), every.max(axis=0)
    factor = 0.8 / max(float((high - low).max()), 1e-6)
    return tuple(Stroke(s.kind, (s.points - (low + high) / 2) * factor + 0.5, s.arc) for s in strokes)


def _random_stroke(rng: np.random.Generator, kind: str) -> Stroke:
    if kind == "bezier":
        return Stroke(kind, rng.uniform(0.05, 0.95, (4, 2)))
    if kind == "polyline":
        return Stroke(kind, rng.uniform(0.05, 0.95, (rng.integers(2, 6), 2)))
    if kind == "ellipse":
        # Centre and the ends of the two axes, so that jitter and the affine map act on it like on any other points.
        centre, radii, angle = rng.uniform(0.3, 0.7, 2), rng.uniform(0.08, 0.3, 2), rng.uniform(0, np.pi)
        axes = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]]) * radii[:, None]
        start = rng.uniform(0, 2 * np.pi)
        sweep = 2 * np.pi if rng.random() < 0.5 else rng.uniform(0.6 * np.pi, 1.6 * np.pi)
        return Stroke(kind, np.vstack([centre, centre + axes]), (start, start + sweep))
    return Stroke(kind, _zigzag_points(rng))


def _zigzag_points(rng: np.random.Generator) -> np.ndarray:
    start, end = rng.uniform(0.1, 0.9, (2, 2))
    teeth = int(rng.integers(3, 8))
    along = np.linspace(0, 1, 2 * teeth + 1)[:, None]
    normal = np.array([start[1] - end[1], end[0] - start[0]])
    normal /= np.linalg.norm(normal) + 1e-9
    offsets = np.where(np.arange(2 * teeth + 1) % 2, 1.0, -1.0)[:, None] * rng.uniform(0.03, 0.08) * normal
    return start + along * (end - start) + offsets


def draw_sketch(prototype: tuple[Stroke, ...], rng: np.random.Generator) -> tuple[Image.Image, int]:
    """One varied drawing of `prototype` on a white "L" canvas, and the JPEG quality to save it with."""
    width, height = (int(side) for side in rng.integers(MIN_SIDE, MAX_SIDE + 1, 2))
    strokes = list(prototype)
    if len(strokes) > 3 and rng.random() < 0.15:
        del strokes[rng.integers(len(strokes))]
    if rng.random() < 0.2:
        strokes.append(_random_stroke(rng, rng.choice(STROKE_KINDS)))
    jitter = rng.uniform(0.01, 0.03)  # of the drawing's size
    lines = [_sampled(s.kind, s.points + rng.normal(0, jitter, s.points.shape), s.arc) for s in strokes]
    lines = _placed(lines, width, height, rng)
    stroke_width = max(1, round(rng.uniform(1, 4) * min(width, height) / 256))
    ink = int(rng.integers(0, 81))
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    for line in lines:
        draw.line(line.ravel().tolist(), fill=ink, width=stroke_width, joint="curve")
    return image, int(rng.integers(75, 96))


def _sampled(kind: str, points: np.ndarray, arc: tuple[float, float]) -> np.ndarray:
    """The stroke as a polyline."""
    if kind == "bezier":
        t = np.linspace(0, 1, 20)[:, None]
        p0, p1, p2, p3 = points
        return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
    if kind == "ellipse":
        angles = np.linspace(*arc, 32)[:, None]
        centre, first, second = points
        return centre + np.cos(angles) * (first - centre) + np.sin(angles) * (second - centre)
    return points


def _placed(lines: list[np.ndarray], width: int, height: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The lines in pixels: rotated, scaled and sheared about the centre, then moved to a random spot that keeps
    the drawing on the canvas (centred when it is too big to move). The aspect ratio is kept, so the drawing fills
    the short side and wanders along the long one."""
    angle, scale = np.deg2rad(rng.uniform(-20, 20)), rng.uniform(0.6, 1.0)
    shear = rng.uniform(-0.15, 0.15)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = rotation @ np.array([[1.0, shear], [0.0, 1.0]]) * scale * min(width, height)
    lines = [(line - 0.5) @ matrix.T for line in lines]
    every = np.vstack(lines)
    low, high = every.min(axis=0), every.max(axis=0)
    canvas, margin = np.array([width, height]), 0.03 * min(width, height)
    lowest, highest = margin - low, canvas - margin - high  # the shifts that keep every point inside the margin
    shift = np.where(lowest <= highest, lowest + rng.random(2) * (highest - lowest), (canvas - low - high) / 2)
    return [line + shift for line in lines]
