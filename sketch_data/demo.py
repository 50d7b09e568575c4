"""Build the embedded demo data set: scikit-learn's bundled handwritten digits, in the competition layout.

The digits ship inside scikit-learn, so the demo needs no network. They become black-on-white JPEGs,
like the sketches, under class names that are words, so that sorted order differs from digit order.
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from .atomic import atomic_write_csv

logger = logging.getLogger(__name__)

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DEMO_IMAGE_SIZE = 64


def build_digits_demo(root: str | Path, test_fraction: float = 0.2, seed: int = 0) -> Path:
    """Write train/, train.csv, test/, test.csv and solution.csv under `root`; return `root`.

    Does nothing if `root/train.csv` exists already.
    """
    root = Path(root)
    if (root / "train.csv").is_file():
        return root
    digits = load_digits()
    class_names = sorted(DIGIT_NAMES)
    names = np.array(DIGIT_NAMES)[digits.target]
    train_idx, test_idx = train_test_split(
        np.arange(len(names)), test_size=test_fraction, stratify=digits.target, random_state=seed
    )
    train_rows = []
    for i in train_idx:
        image_path = f"{names[i]}/digit_{i}.JPEG"
        _save_sketch(digits.images[i], root / "train" / image_path)
        train_rows.append((names[i], image_path, class_names.index(names[i])))
    test_rows = []
    for n, i in enumerate(test_idx):
        _save_sketch(digits.images[i], root / "test" / f"{n}.JPEG")
        test_rows.append((n, f"{n}.JPEG", class_names.index(names[i])))
    solution = pd.DataFrame(test_rows, columns=["ID", "image_path", "target"])
    atomic_write_csv(solution[["image_path"]], root / "test.csv")
    atomic_write_csv(solution, root / "solution.csv")
    # Last, and atomically: train.csv says the demo is complete, so a build killed before it is redone
    atomic_write_csv(pd.DataFrame(train_rows, columns=["class_name", "image_path", "target"]), root / "train.csv")
    logger.info("Built the digits demo data in %s: %d train, %d test images.", root, len(train_rows), len(test_rows))
    return root


def _save_sketch(pixels: np.ndarray, path: Path) -> None:
    ink = (pixels / 16.0 * 255).astype(np.uint8)
    image = Image.fromarray(255 - ink, mode="L").resize((DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE), Image.BICUBIC)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").save(path, quality=95)
