"""sketch_data/splits.py with groups: no group is ever split, the folds stay stratified and partition the rows."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sketch_data.splits import split_indices


def _grouped_targets(seed: int, classes: int = 6, per_class: int = 12, copies: int = 10):
    """Targets of `classes` classes, and groups in which `copies` random pairs (some across classes) share one."""
    rng = np.random.default_rng(seed)
    targets = np.repeat(np.arange(classes), per_class)
    groups = np.arange(len(targets))
    for a, b in rng.choice(len(targets), size=(copies, 2), replace=False).reshape(-1, 2):
        groups[groups == groups[b]] = groups[a]
    return targets, groups


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), folds=st.integers(2, 5))
def test_grouped_folds_never_split_a_group_and_partition_the_rows(seed, folds):
    targets, groups = _grouped_targets(seed)
    validated = []
    for fold in range(folds):
        train, val, kept = split_indices(targets, 0.0, folds, fold, seed, groups)
        assert not set(groups[train]) & set(groups[val])
        assert sorted(np.concatenate([train, val])) == list(range(len(targets)))
        validated += val.tolist()
    assert sorted(validated) == list(range(len(targets)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_grouped_validation_split_keeps_groups_whole_and_every_class(seed):
    targets, groups = _grouped_targets(seed)
    train, val, _ = split_indices(targets, 0.2, None, 0, seed, groups)
    assert not set(groups[train]) & set(groups[val])
    assert set(targets[val]) == set(targets)
    assert 0.1 < len(val) / len(targets) < 0.3


def test_a_group_with_an_image_of_a_class_too_rare_to_split_stays_in_train():
    targets = np.array([0] * 6 + [1] * 6 + [2])  # class 2 has one image: it cannot be split
    groups = np.arange(len(targets))
    groups[0] = groups[12]  # a class-0 image copies it
    for fold in range(3):
        train, val, kept = split_indices(targets, 0.0, 3, fold, 0, groups)
        assert {0, 12} <= set(train) and kept == 2



def test_a_class_that_is_one_cluster_stays_in_train_instead_of_filling_a_validation_fold():
    targets = np.array([0] * 6 + [1] * 6 + [2] * 6)
    groups = np.arange(len(targets))
    groups[12:] = 12  # every image of class 2 is a copy of one drawing: it has one group, fewer than the folds
    for fold in range(3):
        train, val, kept = split_indices(targets, 0.0, 3, fold, 0, groups)
        assert set(range(12, 18)) <= set(train) and kept == 6
        assert set(targets[val]) == {0, 1}


def test_fewer_groups_than_folds_keep_everything_in_train_rather_than_fail():
    targets = np.array([0] * 4 + [1] * 4)
    groups = np.array([0, 0, 1, 1, 2, 2, 3, 3])  # two groups per class, three folds
    train, val, kept = split_indices(targets, 0.0, 3, 0, 0, groups)
    assert len(val) == 0 and kept == 8


@pytest.mark.parametrize("validation_split, folds", [(0.2, 5), (0.25, 4), (0.3, 3), (0.5, 2)])
def test_a_grouped_validation_split_is_one_of_round_1_over_split_folds(validation_split, folds):
    targets = np.repeat(np.arange(4), 60)
    train, val, _ = split_indices(targets, validation_split, None, 0, 0, np.arange(len(targets)))
    assert len(val) == len(targets) // folds
