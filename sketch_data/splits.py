"""Seeded, stratified train/validation splits and k-fold folds."""

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, StratifiedShuffleSplit

from .csv_files import SketchDataError


def split_indices(
    targets: list[int], validation_split: float, num_folds: int | None, fold: int, seed: int,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (train indices, validation indices, rows kept in train because their class is too rare to split).

    Classes with fewer images than the split needs (2, or `num_folds`) cannot be stratified;
    their images all go to train, and the count is returned so that it can be reported.
    With `groups` (e.g. duplicate clusters, sketch_data/duplicates.py), the images of a group are never split:
    scikit-learn's StratifiedGroupKFold keeps each on one side. A validation split is then the first of
    round(1 / validation_split) folds (0.2: 1 of 5; 0.3: 1 of 3), since scikit-learn has no grouped shuffle split.
    A class needs as many groups as folds to be split; a group holding an image that stays in train stays whole.
    """
    targets = np.asarray(targets)
    if num_folds is not None and not 0 <= fold < num_folds:
        raise SketchDataError(f"fold={fold} is out of range for num_folds={num_folds}: use 0..{num_folds - 1}.")
    if num_folds is None and validation_split <= 0:
        return np.arange(len(targets)), np.array([], dtype=int), 0
    needed = num_folds or (2 if groups is None else _grouped_folds(validation_split))
    units = np.arange(len(targets)) if groups is None else np.asarray(groups)
    classes, counts = np.unique(np.unique(np.stack([targets, units]), axis=1)[0], return_counts=True)
    splittable = np.isin(targets, classes[counts >= needed])  # classes with enough images (or groups) to split
    if groups is not None:  # one image of a group that must stay in train keeps the whole group there
        groups = units
        splittable &= ~np.isin(groups, groups[~splittable])
    rows = np.flatnonzero(splittable)
    if not len(rows):  # no class is big enough to split: all of them stay in train
        return np.arange(len(targets)), np.array([], dtype=int), len(targets)
    if groups is None:
        train, val = _stratified(targets[rows], validation_split, num_folds, fold, seed)
    else:
        train, val = _grouped(targets[rows], groups[rows], validation_split, num_folds, fold, seed)
    train = np.sort(np.concatenate([rows[train], np.flatnonzero(~splittable)]))
    return train, np.sort(rows[val]), int((~splittable).sum())


def _stratified(targets: np.ndarray, validation_split: float, num_folds: int | None, fold: int, seed: int):
    dummy = np.zeros(len(targets))
    if num_folds is not None:
        folds = StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed).split(dummy, targets)
        return list(folds)[fold]
    n_classes = len(np.unique(targets))
    val_size = max(int(round(validation_split * len(targets))), n_classes)
    if val_size > len(targets) - n_classes:
        raise SketchDataError(
            f"validation_split={validation_split} leaves too few training images for {n_classes} classes "
            f"({len(targets)} images); lower validation_split."
        )
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=val_size, random_state=seed)
    return next(splitter.split(dummy, targets))


def _grouped(targets: np.ndarray, groups: np.ndarray, validation_split: float, num_folds: int | None, fold: int,
             seed: int):
    """Stratified folds that keep each group on one side; a validation split is the first of them."""
    splits = num_folds or _grouped_folds(validation_split)
    folds = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed).split(targets, targets, groups)
    return list(folds)[fold if num_folds else 0]


def _grouped_folds(validation_split: float) -> int:
    return max(2, int(round(1 / validation_split)))
