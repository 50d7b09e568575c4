"""Mislabelled and odd training images, found by cleanlab from out-of-fold probabilities.

The probabilities are either a finished k-fold run's (scripts/train_kfold.py: every training image predicted by
the fold that did not train on it), or a quick k-fold of a linear softmax head on the frozen backbone's pooled
features, which the feature cache (sketch_train/features.py) shares with frozen-head runs of the same model and
size. Folds keep duplicate clusters together, so that a copy in training does not vouch for its twin's label.
cleanlab then finds label issues (a given label unlikely under the out-of-fold probabilities) and, with its Datalab,
outliers (far from their nearest neighbours in feature space).
"""

import glob
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from cleanlab import Datalab
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.model_selection import StratifiedGroupKFold
from tqdm.auto import tqdm

from sketch_data import SketchDataError

from .ensemble import eval_outputs, pool

logger = logging.getLogger(__name__)
EPOCHS = 20  # of each fold's linear head: enough on quickdraw100's and the 25k generated set's features
MIN_STEPS = 200  # and at least this many steps: Adam's first steps move every weight alike, whatever its gradient
BATCH = 256


def cross_validated_probabilities(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, num_classes: int,
                                  folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold class probabilities (images, classes) of a linear softmax head on standardised features.

    Trained with torch (AdamW, mini-batches) rather than scikit-learn's LogisticRegression, whose full-batch lbfgs
    took minutes per fold at 15,000 images x 1,280 features x 500 classes on 2 cores.
    """
    probabilities = np.zeros((len(labels), num_classes), dtype=np.float32)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a class with fewer images than folds: its images are still predicted
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        try:
            splits = list(splitter.split(features, labels, groups))
        except ValueError as error:  # e.g. fewer clusters of images than folds
            raise SketchDataError(f"cannot make {folds} folds of train.csv's images: {error}; lower --folds.") from None
    x, y = torch.from_numpy(np.asarray(features, np.float32)), torch.from_numpy(np.asarray(labels, np.int64))
    for train, held_out in tqdm(splits, desc=f"Out-of-fold probabilities ({folds} folds)", unit="fold"):
        probabilities[held_out] = _linear_probabilities(x[train], y[train], x[held_out], num_classes, seed)
    return probabilities


def _linear_probabilities(x: torch.Tensor, y: torch.Tensor, predict: torch.Tensor, num_classes: int,
                          seed: int) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-6
    head = torch.nn.Linear(x.shape[1], num_classes)
    torch.nn.init.zeros_(head.weight)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.05)
    x = (x - mean) / std
    epochs = max(EPOCHS, -(-MIN_STEPS // -(-len(x) // BATCH)))
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(BATCH):
            loss = torch.nn.functional.cross_entropy(head(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return torch.softmax(head((predict - mean) / std), dim=1).numpy()


def run_probabilities(prefix: str, image_paths: list[str], num_classes: int) -> np.ndarray:
    """Out-of-fold probabilities from the folds `PREFIX_fold*` of scripts/train_kfold.py, in `image_paths` order: the
    mean softmax of the folds that validated each image, pooled as sketch_train/ensemble.py pools them."""
    runs = fold_runs(prefix)
    position = {path: row for row, path in enumerate(image_paths)}
    rows, logits = [], []
    for run in runs:
        frame, run_logits = eval_outputs(run)
        if run_logits.shape[1] != num_classes:
            raise SketchDataError(f"{run}/eval_logits.npy holds logits of {run_logits.shape[1]} classes for "
                                  f"{num_classes}: was the run trained on this train.csv?")
        found = frame["image_path"].map(position)
        if found.isna().any():
            raise SketchDataError(f"{run}/eval_predictions.csv names {frame['image_path'][found.isna()].iloc[0]}, "
                                  "which is not in this train.csv: was the run trained on other data?")
        rows.append(found.to_numpy(int))
        logits.append(run_logits)
    seen = np.bincount(np.concatenate(rows), minlength=len(image_paths))
    if (seen == 0).any():
        raise SketchDataError(f"--oof {prefix}: {int((seen == 0).sum())} training images (e.g. "
                              f"{image_paths[int(np.argmax(seen == 0))]}) are in no fold's validation set; finish "
                              "every fold of the run, or leave --oof out.")
    logger.info("Out-of-fold probabilities from %d runs: %s", len(runs), ", ".join(map(str, runs)))
    return pool(rows, logits, [1.0] * len(runs), len(image_paths)).probabilities


def fold_runs(prefix: str) -> list[Path]:
    """The folders PREFIX_fold0, PREFIX_fold1, ... of a scripts/train_kfold.py run."""
    runs = sorted(Path(run) for run in glob.glob(f"{glob.escape(prefix)}_fold*") if Path(run).is_dir())
    if not runs:
        raise SketchDataError(f"--oof {prefix}: no folder {prefix}_fold0, {prefix}_fold1, ...; pass the output_dir "
                              "that scripts/train_kfold.py was given.")
    return runs


def label_and_outlier_issues(labels: np.ndarray, probabilities: np.ndarray, features: np.ndarray,
                             max_label_issues: float | None = None) -> pd.DataFrame:
    """cleanlab's verdicts per image: row, issue ("label" or "outlier"), score (low = worse), predicted class.

    `max_label_issues` (a fraction of the images) keeps only that many label issues, the lowest in label quality: a
    prior on the noise rate, for probabilities too weak for cleanlab's own count (it counted 546 where 240 labels
    were wrong, from a fine-tuned 5-fold run at 0.54 out-of-fold accuracy; docs/data.md).

    Label issues are cleanlab.filter.find_label_issues' (Datalab's label check flagged none of 4 flipped labels
    that these found, with out-of-fold probabilities of 0.999 for their true classes); outliers are Datalab's,
    from the features' nearest neighbours.
    """
    flagged = np.flatnonzero(find_label_issues(labels, probabilities))
    quality = get_label_quality_scores(labels, probabilities)
    if max_label_issues is not None:
        flagged = flagged[np.argsort(quality[flagged], kind="stable")[:int(max_label_issues * len(labels))]]
    lab = Datalab(data={"label": labels}, label_name="label", verbosity=0)
    lab.find_issues(features=features, issue_types={"outlier": {}})
    table = lab.get_issues("outlier")
    outliers = np.flatnonzero(table["is_outlier_issue"].to_numpy())
    return pd.DataFrame({
        "row": np.concatenate([flagged, outliers]),
        "issue": ["label"] * len(flagged) + ["outlier"] * len(outliers),
        "score": np.concatenate([quality[flagged], table["outlier_score"].to_numpy()[outliers]]),
        "predicted": probabilities[np.concatenate([flagged, outliers])].argmax(1),
    })
