"""sketch_data.synthetic and scripts/make_synthetic_data.py: the competition layout exactly, the same bytes for a seed
whatever the workers, classes a model can tell apart, and never a write into someone else's folder."""

import itertools
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_script, script_module
from PIL import Image

from sketch_data import load_sketch_dataset
from sketch_data.synthetic import _classes_evenly, write_synthetic_competition

SIZE = {"num_classes": 12, "train_images": 40, "test_images": 25}
CLASS_NAMES = [f"sketch_{i:03d}" for i in range(12)]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return write_synthetic_competition(tmp_path_factory.mktemp("synthetic"), **SIZE, seed=3, workers=1)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def ink_map(path: Path) -> np.ndarray:
    """How much ink, on a 32x32 grid over the drawing's bounding square, flattened: each image places its drawing
    somewhere else on a canvas of its own shape, which would hide the likeness from a comparison of whole canvases."""
    gray = Image.open(path).convert("L")
    rows, columns = np.nonzero(np.asarray(gray) < 200)
    drawing = gray.crop((columns.min(), rows.min(), columns.max() + 1, rows.max() + 1))
    side = max(drawing.size)
    square = Image.new("L", (side, side), 255)
    square.paste(drawing, ((side - drawing.width) // 2, (side - drawing.height) // 2))
    return 1 - np.asarray(square.resize((32, 32), Image.BOX), dtype=np.float64).ravel() / 255


def test_layout_and_csvs_are_the_competitions(synthetic):
    assert {p.name for p in synthetic.iterdir()} == {"train", "train.csv", "test", "test.csv", "solution.csv",
                                                      "synthetic.json"}
    train = pd.read_csv(synthetic / "train.csv")
    assert list(train.columns) == ["class_name", "image_path", "target"]
    assert sorted(train.class_name.unique()) == CLASS_NAMES
    assert list(train.target) == [CLASS_NAMES.index(name) for name in train.class_name]
    assert all(path.startswith(f"{name}/{name}_") and path.endswith(".JPEG")
               for name, path in zip(train.class_name, train.image_path))
    counts = train.class_name.value_counts()
    assert len(train) == 40 and counts.min() >= 1 and counts.max() - counts.min() <= 1

    test = pd.read_csv(synthetic / "test.csv")
    solution = pd.read_csv(synthetic / "solution.csv")
    assert list(test.columns) == ["image_path"] and list(solution.columns) == ["ID", "image_path", "target"]
    assert list(test.image_path) == list(solution.image_path) == [f"{i}.JPEG" for i in range(25)]
    assert list(solution.ID) == list(range(25))
    test_counts = solution.target.value_counts()
    assert len(test_counts) == 12 and test_counts.max() - test_counts.min() <= 1
    assert not solution.target.is_monotonic_increasing  # shuffled, not grouped by class

    on_disk = files(synthetic)
    listed = {f"train/{p}" for p in train.image_path} | {f"test/{p}" for p in test.image_path}
    assert set(on_disk) == listed | {"train.csv", "test.csv", "solution.csv", "synthetic.json"}


def test_the_competitions_sizes_are_spread_as_evenly_as_possible():
    """Without drawing 25,035 images: the class of every image, as the writer assigns them."""
    train, test = np.bincount(_classes_evenly(15_021, 500)), np.bincount(_classes_evenly(10_014, 500))
    assert (train == 31).sum() == 21 and (train == 30).sum() == 479
    assert (test == 21).sum() == 14 and (test == 20).sum() == 486


def test_loads_with_labels_equal_to_targets(synthetic):
    data = load_sketch_dataset(synthetic / "train", synthetic / "train.csv", synthetic / "test", synthetic / "test.csv",
                               validation_split=0)
    assert data.class_names == data.label_names == CLASS_NAMES
    rows = data.splits["train"].with_format(None).remove_columns("image")
    targets = pd.read_csv(synthetic / "train.csv").set_index("image_path").target
    assert sorted(rows["image_path"]) == sorted(targets.index)
    assert rows["label"] == [targets[p] for p in rows["image_path"]]
    assert len(data.splits["test"]) == 25


def test_images_are_rgb_jpegs_of_varied_sizes_with_dark_ink_on_white(synthetic):
    sizes = set()
    for path in [*synthetic.glob("train/*/*.JPEG"), *synthetic.glob("test/*.JPEG")]:
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert 200 <= min(image.size) and max(image.size) <= 500
            sizes.add(image.size)
            gray = np.asarray(image.convert("L"))
        assert (gray > 200).mean() > 0.8, path  # mostly white paper
        assert (gray < 128).mean() > 0.002, path  # with some dark strokes
    assert len(sizes) > 50 and len({w / h for w, h in sizes}) > 50


def test_same_seed_gives_the_same_bytes_with_any_workers_and_another_seed_other_images(synthetic, tmp_path):
    in_two = write_synthetic_competition(tmp_path / "two", **SIZE, seed=3, workers=2)
    assert files(in_two) == files(synthetic)
    other = files(write_synthetic_competition(tmp_path / "other", **SIZE, seed=4, workers=1))
    images = [name for name in other if name.endswith(".JPEG")]
    assert all(other[name] != files(synthetic)[name] for name in images)


def test_images_of_a_class_are_more_alike_than_images_of_different_classes(synthetic):
    train = pd.read_csv(synthetic / "train.csv")
    maps = {path: ink_map(synthetic / "train" / path) for path in train.image_path}
    within, across = [], []
    for (a, class_a), (b, class_b) in itertools.combinations(zip(train.image_path, train.target), 2):
        (within if class_a == class_b else across).append(np.corrcoef(maps[a], maps[b])[0, 1])
    assert np.mean(within) > np.mean(across) + 0.1, (np.mean(within), np.mean(across))


def test_a_rerun_with_the_same_parameters_touches_nothing(synthetic, caplog):
    before = mtimes(synthetic)
    with caplog.at_level(logging.INFO, logger="sketch_data.synthetic"):
        assert write_synthetic_competition(synthetic, **SIZE, seed=3, workers=1) == synthetic
    assert mtimes(synthetic) == before
    assert "Reusing the synthetic sketches" in caplog.text


@pytest.mark.parametrize("change", [{"seed": 4}, {"num_classes": 10}, {"test_images": 5}])
def test_other_parameters_into_a_finished_set_are_refused(synthetic, change):
    before = mtimes(synthetic)
    with pytest.raises(ValueError, match=f"{synthetic} holds a synthetic set made with other parameters.*empty"):
        write_synthetic_competition(synthetic, **{**SIZE, "seed": 3, **change}, workers=1)
    assert mtimes(synthetic) == before


def test_a_folder_with_other_files_is_refused_and_left_alone(tmp_path):
    (tmp_path / "train.csv").write_text("class_name,image_path,target\nant,ant/1.JPEG,0\n")
    (tmp_path / "notes.txt").write_text("my real data")
    before = files(tmp_path)
    with pytest.raises(ValueError, match=f"{tmp_path} holds other files.*pick an empty"):
        write_synthetic_competition(tmp_path, **SIZE)
    assert files(tmp_path) == before


def test_a_killed_build_is_redone(tmp_path):
    root = write_synthetic_competition(tmp_path / "set", **SIZE, workers=1)
    complete = files(root)
    (root / "train.csv").unlink()  # as if killed before the last write
    (root / "test" / "3.JPEG").write_bytes(b"half")
    os.remove(root / "solution.csv")
    write_synthetic_competition(root, **SIZE, workers=1)
    assert files(root) == complete


@pytest.mark.parametrize("arguments, message", [
    ({"num_classes": 1}, "at least 2 classes"),
    ({"num_classes": 12, "train_images": 11}, "every class needs at least one training image"),
    ({"test_images": -1}, "test_images=-1"),
    ({"workers": 0}, "workers=0"),
])
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        write_synthetic_competition(tmp_path / "set", **{**SIZE, **arguments})
    assert not (tmp_path / "set").exists()


def test_the_script_writes_a_set_and_names_the_next_command(tmp_path):
    result = run_script("scripts/make_synthetic_data.py", "--output_dir", str(tmp_path / "set"), "--num_classes", "3",
                        "--train_images", "7", "--test_images", "4", "--seed", "1", "--workers", "2", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Wrote 7 training images (3 classes) and 4 test images to {tmp_path / 'set'} in " in result.stdout
    assert f"--data_dir {tmp_path / 'set'}" in result.stdout
    assert "Wrote 7 synthetic training images (3 classes) and 4 test images" in result.stderr  # the INFO line
    assert len(pd.read_csv(tmp_path / "set" / "train.csv")) == 7


def test_the_script_puts_bad_arguments_in_one_error_line(tmp_path, capsys):
    main = script_module("make_synthetic_data").main  # in this process: the test above runs the script itself
    code = main(["--output_dir", str(tmp_path / "set"), "--num_classes", "5", "--train_images", "4"])
    assert code == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == ["error: train_images=4 is fewer than num_classes=5: every class needs at least one training "
                      "image."]
    assert not (tmp_path / "set").exists()
