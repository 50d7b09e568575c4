"""sketch_data/cache.py: pre-resized images give exactly the uncached tensors, are reused, and follow the files."""

import os
import shutil

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from sketch_data import load_sketch_dataset
from sketch_data.cache import (
    eval_resize,
    preresize_folder,
    preresize_splits,
    preresized,
)
from sketch_data.transforms import eval_transform
from sketch_train.arguments import ModelArguments
from sketch_train.model import build_model


@pytest.fixture(scope="module")
def processor():
    """convnext_atto's processor at 48 px: resize the shorter side to 54 (48 / 0.875), then crop 48."""
    return build_model(ModelArguments(model_name_or_path="convnext_atto", image_size=48), ["a", "b"])[1]


@pytest.fixture()
def data_dir(quickdraw_mini, tmp_path):
    """A private copy, so a test can touch an image."""
    return shutil.copytree(quickdraw_mini, tmp_path / "data")


def load(data_dir):
    return load_sketch_dataset(data_dir / "train", data_dir / "train.csv", data_dir / "test", data_dir / "test.csv",
                               check_images=False).splits


def test_cached_images_give_exactly_the_uncached_tensors(data_dir, processor, tmp_path):
    splits = load(data_dir)
    cached = preresize_splits(splits, processor, tmp_path / "cache")
    transform = eval_transform(processor)
    for name, split in splits.items():
        assert cached[name]["image_path"] == split["image_path"]
        if name != "test":
            assert cached[name]["label"] == split["label"]
        assert min(cached[name][0]["image"].size) == 54
        for original, small in zip(split, cached[name]):
            assert torch.equal(transform(original["image"]), transform(small["image"]))


def test_grey_sketches_are_stored_in_one_channel_and_colour_ones_in_three(processor, tmp_path):
    grey = np.random.default_rng(0).integers(0, 255, (60, 70), dtype=np.uint8)
    colour = np.dstack([grey, grey, 255 - grey])
    paths = [str(tmp_path / "grey.jpg"), str(tmp_path / "colour.png")]
    Image.fromarray(grey).convert("RGB").save(paths[0])  # an RGB JPEG of a grey drawing, like most sketches
    Image.fromarray(colour).save(paths[1])
    dataset = datasets.Dataset.from_dict({"image": paths}, features=datasets.Features({"image": datasets.Image()}))
    cached = preresized(paths, eval_resize(processor), tmp_path / "cache")
    assert [row["image"].mode for row in cached] == ["L", "RGB"]
    transform = eval_transform(processor)
    for original, small in zip(dataset, cached):
        assert torch.equal(transform(original["image"]), transform(small["image"]))


def arrow_files(cache) -> list[str]:
    return sorted(name for name in os.listdir(cache) if name.endswith(".arrow"))


def test_a_second_run_reuses_the_cache_and_a_changed_file_rebuilds_it(data_dir, processor, tmp_path, caplog):
    cache = tmp_path / "cache"
    preresize_splits(load(data_dir), processor, cache)
    built = arrow_files(cache)
    assert len(built) == 2  # train.csv's images (train and validation), test.csv's
    caplog.set_level("INFO", logger="sketch_data.cache")
    preresize_splits(load(data_dir), processor, cache)
    assert arrow_files(cache) == built and caplog.text.count("Reusing pre-resized images") == 2

    test_image = data_dir / "test" / sorted(os.listdir(data_dir / "test"))[0]
    os.utime(test_image, ns=(0, 0))
    preresize_splits(load(data_dir), processor, cache)
    assert len(arrow_files(cache)) == 3  # only test.csv's images changed


@pytest.mark.parametrize("split", [dict(num_folds=3, fold=1), dict(num_folds=3, fold=2), dict(seed=7)],
                         ids=["fold1", "fold2", "seed7"])
def test_every_fold_and_seed_reads_the_one_cache_of_train_csvs_images(quickdraw_mini, processor, tmp_path, split):
    cache = tmp_path / "cache"
    first = preresize_splits(load_sketch_dataset(quickdraw_mini / "train", quickdraw_mini / "train.csv",
                                                 num_folds=3, fold=0, check_images=False).splits, processor, cache)
    built = arrow_files(cache)
    other = load_sketch_dataset(quickdraw_mini / "train", quickdraw_mini / "train.csv", check_images=False,
                                **split).splits
    cached = preresize_splits(other, processor, cache)
    assert arrow_files(cache) == built  # nothing new on disk
    for name, part in other.items():  # each split's own rows, in its order, with its own labels and images
        assert cached[name]["image_path"] == part["image_path"] and cached[name]["label"] == part["label"]
        assert [np.asarray(image).tolist() for image in cached[name]["image"]] == [
            np.asarray(eval_resize(processor)(image.convert("RGB")).convert("L")).tolist() for image in part["image"]]
    assert sorted([*first["train"]["image_path"], *first["validation"]["image_path"]]) == sorted(
        [*cached["train"]["image_path"], *cached["validation"]["image_path"]])


class CropOnly:
    """A processor whose eval transform has no resize to cache."""
    val_transforms = v2.Compose([v2.CenterCrop(32)])


def test_auto_caches_in_the_datasets_cache_where_the_inputs_stay_the_same(processor, monkeypatch, tmp_path):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    assert preresize_folder("auto", "sketch", processor) == tmp_path / "datasets" / "sketch_preresized"
    assert preresize_folder("auto", "timm", processor) is None  # timm's random crops read the originals
    assert preresize_folder("auto", "sketch", CropOnly()) is None
    assert preresize_folder("off", "sketch", processor) is None
    assert preresize_folder(str(tmp_path / "mine"), "sketch", processor) == tmp_path / "mine"


def test_an_eval_transform_without_a_leading_resize_is_refused():
    with pytest.raises(ValueError, match=r"starts with CenterCrop\(size=\(32, 32\)\), not a Resize: run with "
                                         r"--preresize_cache off\.$"):
        eval_resize(CropOnly())


@pytest.mark.parametrize("cut", ["empty", "half"])
def test_a_cache_file_cut_short_by_a_power_cut_is_rebuilt(data_dir, processor, tmp_path, caplog, cut):
    cache = tmp_path / "cache"
    splits = load(data_dir)
    first = preresize_splits(splits, processor, cache)["test"]["image"]
    test_file = next(f for f in cache.glob("*.arrow") if len(datasets.Dataset.from_file(str(f))) == len(first))
    data = test_file.read_bytes()
    # a new file under the old name: this process still maps the old one, which truncating in place would break
    cut_file = tmp_path / "cut.arrow"
    cut_file.write_bytes(b"" if cut == "empty" else data[: len(data) // 2])
    os.replace(cut_file, test_file)
    caplog.set_level("INFO", logger="sketch_data.cache")
    again = preresize_splits(load(data_dir), processor, cache)["test"]["image"]
    assert f"Rebuilding {test_file}: it does not read" in caplog.text
    assert caplog.text.count("Reusing pre-resized images") == 1  # train.csv's images only
    assert [np.asarray(a).tolist() for a in again] == [np.asarray(a).tolist() for a in first]
