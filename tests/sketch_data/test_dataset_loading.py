"""CSV -> DatasetDict: labels equal the competition's targets, splits are stratified, folds are disjoint."""

from pathlib import Path

import numpy as np
import pandas as pd
from datasets import ClassLabel, Image, load_dataset

from sketch_data import load_sketch_dataset


def load(root, **kwargs):
    return load_sketch_dataset(root / "train", root / "train.csv", root / "test", root / "test.csv", **kwargs)


def test_labels_equal_targets_and_features_match_imagefolder(quickdraw_mini):
    data = load(quickdraw_mini)
    csv = pd.read_csv(quickdraw_mini / "train.csv").set_index("image_path")
    for split in ("train", "validation"):
        rows = data.splits[split].with_format(None).remove_columns("image")
        assert [csv.target[p] for p in rows["image_path"]] == rows["label"]
        assert isinstance(data.splits[split].features["image"], Image)
    label = data.splits["train"].features["label"]
    assert isinstance(label, ClassLabel)
    assert label.names == sorted(csv.class_name.unique()) == data.class_names
    assert len(data.splits["train"]) + len(data.splits["validation"]) == len(csv)
    assert data.splits["train"][0]["image"].mode == "RGB"


def test_every_training_image_gets_the_label_id_and_class_name_imagefolder_gives_it(quickdraw_mini):
    """The design's imagefolder dataset and load_sketch_dataset agree image by image (docs/data.md)."""
    folder = load_dataset("imagefolder", data_dir=str(quickdraw_mini / "train"), split="train")
    folder_names = folder.features["label"].names
    by_file = {Path(row["image"]["path"]).resolve(): row["label"]
               for row in folder.cast_column("image", Image(decode=False))}
    data = load(quickdraw_mini, validation_split=0.0)
    ours = data.splits["train"].cast_column("image", Image(decode=False))
    assert folder_names == data.splits["train"].features["label"].names == data.class_names
    assert len(by_file) == len(ours) == len(pd.read_csv(quickdraw_mini / "train.csv"))
    for row in ours:
        assert by_file[Path(row["image"]["path"]).resolve()] == row["label"], row["image_path"]
        assert folder_names[row["label"]] == row["image_path"].split("/")[0]


def test_test_split_keeps_csv_order_and_image_path(quickdraw_mini):
    test = load(quickdraw_mini).splits["test"]
    assert test.with_format(None)["image_path"] == pd.read_csv(quickdraw_mini / "test.csv").image_path.tolist()
    assert "label" not in test.features


def test_validation_split_is_stratified_and_seeded(quickdraw100):
    data = load(quickdraw100, validation_split=0.2, seed=3)
    val_labels = np.array(data.splits["validation"].with_format(None).remove_columns("image")["label"])
    assert len(val_labels) == 400
    assert set(np.bincount(val_labels, minlength=100)) == {4}  # 20 per class -> exactly 4 each
    again = load(quickdraw100, validation_split=0.2, seed=3).splits["validation"].with_format(None)["image_path"]
    other = load(quickdraw100, validation_split=0.2, seed=4).splits["validation"].with_format(None)["image_path"]
    assert again == data.splits["validation"].with_format(None)["image_path"]
    assert again != other


def test_kfold_validation_sets_are_disjoint_and_cover_train(quickdraw_mini):
    folds = [load(quickdraw_mini, num_folds=4, fold=k).splits for k in range(4)]
    val_sets = [set(f["validation"].with_format(None)["image_path"]) for f in folds]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not val_sets[i] & val_sets[j]
        assert not val_sets[i] & set(folds[i]["train"].with_format(None)["image_path"])
    assert set().union(*val_sets) == set(pd.read_csv(quickdraw_mini / "train.csv").image_path)


def test_wordnet_ids_get_readable_label_names(tmp_path, quickdraw_mini):
    csv = pd.read_csv(quickdraw_mini / "train.csv")
    ids = {"beach": "n04355933", "belt": "n04356056"}  # sunglass, sunglasses
    sub = csv[csv.class_name.isin(ids)].copy()
    sub["class_name"] = sub.class_name.map(ids)  # image_path still points into the shared train folder
    sub.to_csv(tmp_path / "train.csv", index=False)
    data = load_sketch_dataset(quickdraw_mini / "train", tmp_path / "train.csv", validation_split=0)
    assert data.class_names == ["n04355933", "n04356056"]
    assert data.label_names == ["sunglass", "sunglasses"]
