"""sketch_data.noisy_copy and scripts/make_noisy_copy.py: a valid competition layout, exactly the injected problems
and their truth, copies that really are transforms of their sources, the same bytes for a seed, and no writes into
someone else's folder."""

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_script, script_module
from PIL import Image

from sketch_data.noisy_copy import NoiseCounts, make_noisy_copy, original_test_accuracy, undo_dihedral

COUNTS = NoiseCounts(label_noise=0.1, within_class=5, cross_class=4, train_test=3)  # quickdraw-mini: 80 train
SMALL = ["--within_class", "1", "--cross_class", "1", "--train_test", "1"]  # the defaults need > 80 images
KINDS = {"label": 8, "duplicate": 5, "cross_class_duplicate": 4, "train_test_duplicate": 3}
TRANSFORM = re.compile(r"^((hflip|vflip|rot90|rot180|rot270|transpose|transverse)\+)?(rescale(0\.(8\d|9[0-5])|"
                       r"1\.(0[5-9]|1\d|2[0-5]))\+)?jpeg(6\d|[7-8]\d|9[0-5])$")


@pytest.fixture(scope="module")
def noisy(tmp_path_factory, quickdraw_mini) -> Path:
    root = tmp_path_factory.mktemp("noisy") / "copy"
    make_noisy_copy(quickdraw_mini, root, COUNTS, seed=1)
    return root


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"image_path": str, "class_name": str}, keep_default_na=False)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def ink(image: Image.Image) -> np.ndarray:
    """Ink on a 64x64 grid: coarse enough that resampling and JPEG blur hardly matter."""
    return 255 - np.asarray(image.convert("L").resize((64, 64), Image.Resampling.BOX), dtype=np.float64).ravel()


def test_copy_is_a_valid_competition_layout(noisy, quickdraw_mini):
    train = read(noisy / "train.csv")
    classes = sorted(read(quickdraw_mini / "train.csv")["class_name"].unique())
    assert sorted(train["class_name"].unique()) == classes
    assert list(train["target"]) == [classes.index(name) for name in train["class_name"]]
    assert all(path.startswith(f"{name}/") for name, path in zip(train["class_name"], train["image_path"]))
    on_disk = {str(p.relative_to(noisy / "train")) for p in (noisy / "train").rglob("*.JPEG")}
    assert set(train["image_path"]) == on_disk and not train["image_path"].duplicated().any()

    test, solution = read(noisy / "test.csv"), read(noisy / "solution.csv")
    assert list(test["image_path"]) == list(solution["image_path"])
    assert set(test["image_path"]) == {p.name for p in (noisy / "test").iterdir()}
    assert list(solution["ID"]) == list(range(len(solution)))
    assert read(noisy / "solution_original.csv").equals(read(quickdraw_mini / "solution.csv"))
    assert list(test["image_path"][20:]) == ["20.JPEG", "21.JPEG", "22.JPEG"]  # quickdraw-mini's end at 19.JPEG


def test_exactly_the_requested_problems_are_injected_and_recorded(noisy):
    injected = read(noisy / "injected.csv")
    assert list(injected.columns) == ["image_path", "kind", "related_image_path", "true_label", "given_label",
                                      "transform"]
    assert injected["kind"].value_counts().to_dict() == KINDS
    assert len(read(noisy / "train.csv")) == 80 + 5 + 4 and len(read(noisy / "test.csv")) == 20 + 3
    # Every injected image and every source is a different source image; no flipped image is a source.
    originals = [f"train/{row.true_label}/{Path(row.image_path).name}" for row in injected.itertuples()
                 if row.kind == "label"] + list(injected["related_image_path"][injected["kind"] != "label"])
    assert len(set(originals)) == len(originals) == 20
    assert injected["image_path"].is_unique


def test_flipped_images_sit_in_the_folder_of_their_given_label(noisy, quickdraw_mini):
    injected, train = read(noisy / "injected.csv"), read(noisy / "train.csv").set_index("image_path")
    flips = injected[injected["kind"] == "label"]
    for row in flips.itertuples():
        name = Path(row.image_path).name
        assert row.image_path == f"train/{row.given_label}/{name}" and row.given_label != row.true_label
        assert train.at[f"{row.given_label}/{name}", "class_name"] == row.given_label
        assert not (noisy / "train" / row.true_label / name).exists()  # moved, not copied
        assert (noisy / row.image_path).read_bytes() == (quickdraw_mini / "train" / row.true_label / name).read_bytes()
        assert row.related_image_path == "" and row.transform == ""


def test_each_duplicate_is_the_transform_of_its_source(noisy):
    injected = read(noisy / "injected.csv")
    train = read(noisy / "train.csv").set_index("image_path")
    solution = read(noisy / "solution.csv").set_index("image_path")
    classes = sorted(train["class_name"].unique())
    for row in injected[injected["kind"] != "label"].itertuples():
        assert TRANSFORM.match(row.transform), row.transform
        source_path = row.related_image_path.removeprefix("train/")
        assert train.at[source_path, "class_name"] == row.true_label
        if row.kind == "train_test_duplicate":
            assert row.given_label == "" and re.fullmatch(r"test/\d+\.JPEG", row.image_path)
            assert solution.at[row.image_path.removeprefix("test/"), "target"] == classes.index(row.true_label)
        else:
            assert re.fullmatch(r"train/[a-z ]+/\d{16}\.JPEG", row.image_path), row.image_path
            assert train.at[row.image_path.removeprefix("train/"), "class_name"] == row.given_label
            assert (row.given_label == row.true_label) == (row.kind == "duplicate")
        copy, source = Image.open(noisy / row.image_path), Image.open(noisy / row.related_image_path)
        rescale = re.search(r"rescale([\d.]+)", row.transform)
        if rescale:
            assert max(copy.size) == round(max(source.size) * float(rescale.group(1)))
        else:
            assert sorted(copy.size) == sorted(source.size)
        restored = undo_dihedral(copy, row.transform).resize(source.size, Image.Resampling.BICUBIC)
        assert restored.size == source.size
        # Mean absolute difference is dominated by the white background; correlation of the ink is not.
        assert np.corrcoef(ink(restored), ink(source))[0, 1] > 0.95, row


def test_same_seed_same_bytes_other_seed_other_truth(noisy, quickdraw_mini, tmp_path):
    make_noisy_copy(quickdraw_mini, tmp_path / "again", COUNTS, seed=1)
    assert files(tmp_path / "again") == files(noisy)
    make_noisy_copy(quickdraw_mini, tmp_path / "again", COUNTS, seed=2)  # a noisy copy of ours is replaced
    assert (tmp_path / "again" / "injected.csv").read_bytes() != (noisy / "injected.csv").read_bytes()


def test_original_test_accuracy_ignores_the_injected_test_images(noisy, tmp_path):
    submission = read(noisy / "solution.csv")[["image_path", "target"]]
    submission.loc[[0, 1, 20, 21, 22], "target"] += 1  # 2 of the 20 originals wrong; the injected ones don't count
    submission.iloc[::-1].to_csv(tmp_path / "submission.csv", index=False)
    assert original_test_accuracy(tmp_path / "submission.csv", noisy) == pytest.approx(18 / 20)
    submission.drop(index=3).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(ValueError, match="lacks 1 original test image"):
        original_test_accuracy(tmp_path / "short.csv", noisy)


def test_script_copies_and_prints_a_summary(quickdraw_mini, tmp_path):
    result = run_script("scripts/make_noisy_copy.py", "--source", str(quickdraw_mini), "--output_dir",
                        str(tmp_path / "out"), *SMALL, "--within_class", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "injecting 8 label, 2 duplicate, 1 cross_class_duplicate, 1 train_test_duplicate" in result.stdout
    assert len(read(tmp_path / "out" / "injected.csv")) == 12


def test_foreign_non_empty_folder_is_refused(quickdraw_mini, tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    main = script_module("make_noisy_copy").main
    assert main(["--source", str(quickdraw_mini), "--output_dir", str(tmp_path / "mine"), *SMALL]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(tmp_path / "mine") in error and "noisy_copy.json" in error
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_missing_source_train_csv_is_named(quickdraw_mini, tmp_path, capsys):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("test.csv", "solution.csv"):
        shutil.copy(quickdraw_mini / name, source / name)
    main = script_module("make_noisy_copy").main
    assert main(["--source", str(source), "--output_dir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"error: {source / 'train.csv'}: no such file (a noisy copy needs train.csv, test.csv and " \
                    "solution.csv)."
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, message", [
    (["--train_test", "100"], "need 208 distinct train images; the source has 80"),
    (["--label_noise", "1.5"], "label_noise=1.5"),
])
def test_impossible_counts_are_refused(quickdraw_mini, tmp_path, capsys, flags, message):
    main = script_module("make_noisy_copy").main
    assert main(["--source", str(quickdraw_mini), "--output_dir", str(tmp_path / "out"), *flags]) == 2
    assert message in capsys.readouterr().err
