"""sketch_data/issues_file.py and the data options that read it: --exclude_images and --group_duplicates in
load_sketch_dataset (the images gone, counted and logged; copies kept on one side of every fold)."""

import logging
import shutil

import pandas as pd
import pytest
from conftest import logged

from sketch_data import SketchDataError, load_sketch_dataset
from sketch_data.issues_file import COLUMNS, excluded_train_images, read_issues, train_copies_in_test


def _issues(path, rows):
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path, index=False)
    return path


@pytest.fixture
def issues_csv(tmp_path, quickdraw_mini):
    frame = pd.read_csv(quickdraw_mini / "train.csv")
    frame = frame.assign(n=frame.groupby("class_name").cumcount()).sort_values(["n", "class_name"])  # classes alternate
    train, kept_class = frame["image_path"].tolist(), frame["class_name"].iloc[2]  # the pair's class: train[2]'s
    return _issues(tmp_path / "issues.csv", [
        [f"train/{train[0]}", "label", 0.01, "", "belt"],
        [f"train/{train[1]}", "cross_class_duplicate", 0.97, f"train/{train[2]}", kept_class],
        [f"train/{train[2]}", "cross_class_duplicate", 0.97, f"train/{train[1]}", kept_class],
        [f"train/{train[3]}", "duplicate", 0.99, f"train/{train[4]}", ""],
        [f"train/{train[0]}", "outlier", 0.2, "", ""],
        ["test/3.JPEG", "train_test_duplicate", 0.9, f"train/{train[5]}", "beach"],
        ["test/3.JPEG", "train_test_duplicate", 0.95, f"train/{train[6]}", "beach"],
        ["test/4.JPEG", "blurry", 0.1, "", ""],
    ]), train


def test_the_default_issues_exclude_label_and_cross_class_images(issues_csv):
    path, train = issues_csv
    kept_class = excluded_train_images(path, ["cross_class_duplicate"])[train[2]][1]
    assert excluded_train_images(path, ["label", "cross_class_duplicate"]) == {
        train[0]: ("label", "belt"), train[1]: ("cross_class_duplicate", kept_class),
        train[2]: ("cross_class_duplicate", kept_class)}
    assert excluded_train_images(path, ["blurry"]) == {}  # a test image is never left out of the test set


def test_a_test_copy_takes_the_class_the_doctor_suggests(issues_csv, tmp_path):
    path, _ = issues_csv
    assert train_copies_in_test(path) == {"3.JPEG": "beach"}
    frame = pd.read_csv(path, keep_default_na=False)
    frame.loc[frame["image_path"] == "test/3.JPEG", "suggested_label"] = ""  # a copy of a cluster without a majority
    frame.to_csv(tmp_path / "no_majority.csv", index=False)
    assert train_copies_in_test(tmp_path / "no_majority.csv") == {}


def test_excluded_images_are_gone_from_every_split_counted_and_logged(issues_csv, quickdraw_mini):
    path, train = issues_csv
    exclude = excluded_train_images(path, ["label", "cross_class_duplicate"])
    with logged() as lines:
        data = load_sketch_dataset(quickdraw_mini / "train", quickdraw_mini / "train.csv", validation_split=0.25,
                                   exclude=exclude)
    kept = data.splits["train"]["image_path"][:] + data.splits["validation"]["image_path"][:]
    # train[2] is the cross-class pair's image whose class the doctor decided the pair has: it stays
    assert sorted(kept) == sorted(set(train) - {train[0], train[1]})
    assert data.counts["excluded_train_images"] == 2
    assert data.class_names == sorted(pd.read_csv(quickdraw_mini / "train.csv")["class_name"].unique())
    assert "Excluding 2 of 80 training images, as --exclude_images asks: 1 label, 1 cross_class_duplicate." in lines


def test_grouped_folds_keep_copies_together(quickdraw_mini, tmp_path, caplog):
    data_dir = tmp_path / "data"
    shutil.copytree(quickdraw_mini, data_dir)
    train = pd.read_csv(data_dir / "train.csv")
    copies = []  # three drawings each copied into its own class, one into another class
    for row, target_class in ((0, None), (10, None), (20, "belt")):
        source = train.iloc[row]
        name = target_class or source.class_name
        image_path = f"{name}/copy{row}.JPEG"
        (data_dir / "train" / image_path).write_bytes((data_dir / "train" / source.image_path).read_bytes())
        copies.append((source.image_path, image_path))
        train.loc[len(train)] = [name, image_path, sorted(train["class_name"].unique()).index(name)]
    train.to_csv(data_dir / "train.csv", index=False)
    for fold in range(4):
        with caplog.at_level(logging.INFO, logger="sketch_data"):
            data = load_sketch_dataset(data_dir / "train", data_dir / "train.csv", num_folds=4, fold=fold,
                                       group_duplicates=True)
        validation = set(data.splits["validation"]["image_path"][:])
        assert all((a in validation) == (b in validation) for a, b in copies)
        assert data.counts["duplicate_clusters_kept_together"] == 3
    assert "3 clusters of copies (6 images) are each kept on one side" in caplog.text


@pytest.mark.parametrize("content, message", [
    (None, "file not found. Run scripts/doctor.py first"),
    ("image_path,issue\ntrain/a.JPEG,label\n", "no column score, related_image_path, suggested_label"),
])
def test_a_bad_issues_file_is_one_error_naming_it(tmp_path, content, message):
    path = tmp_path / "issues.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SketchDataError) as error:
        read_issues(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value)
