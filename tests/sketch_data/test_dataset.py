"""load_sketch_dataset's policies: unusable images stop the run or are skipped with a count, rare classes stay in train."""

import io
import logging

import pytest
from PIL import Image

from sketch_data import SketchDataError, load_sketch_dataset


def image_bytes(size=(32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, 255).save(buffer, "PNG")
    return buffer.getvalue()


def make_data(root, per_class: dict[str, int], files: dict[str, bytes] | None = None, test: int = 2):
    """train/<class>/<i>.JPEG with a train.csv, and test/<i>.JPEG with a test.csv; `files` overrides contents."""
    rows = ["class_name,image_path,target"]
    for target, (name, count) in enumerate(sorted(per_class.items())):
        for i in range(count):
            rows.append(f"{name},{name}/{i}.JPEG,{target}")
    tests = ["image_path"] + [f"{i}.JPEG" for i in range(test)]
    contents = {f"train/{row.split(',')[1]}": image_bytes() for row in rows[1:]}
    contents |= {f"test/{path}": image_bytes() for path in tests[1:]}
    for relative, data in (contents | (files or {})).items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    (root / "test.csv").write_text("\n".join(tests) + "\n")
    return root


def load(root, **kwargs):
    return load_sketch_dataset(root / "train", root / "train.csv", root / "test", root / "test.csv", **kwargs)


def paths(split) -> list[str]:
    return split.with_format(None).remove_columns("image")["image_path"]


TRUNCATED = image_bytes((64, 64))[:60]


def test_unusable_training_image_stops_with_its_line_by_default(tmp_path):
    root = make_data(tmp_path, {"ant": 4, "bee": 4}, {"train/bee/2.JPEG": b"", "train/ant/1.JPEG": TRUNCATED})
    with pytest.raises(SketchDataError) as raised:
        load(root)
    message = str(raised.value)
    assert message.startswith(
        f"{root / 'train.csv'}: 2 unusable image(s): line 3 ant/1.JPEG: is truncated or corrupt ("
    )
    assert message.endswith(
        "; line 8 bee/2.JPEG: is empty (0 bytes). Replace or delete these files, "
        "or pass --bad_images skip to leave them out of training."
    )


def test_skip_policy_leaves_unusable_images_out_and_counts_them(tmp_path, caplog):
    root = make_data(tmp_path, {"ant": 4, "bee": 4}, {"train/bee/2.JPEG": b"not an image"})
    with caplog.at_level(logging.WARNING, logger="sketch_data"):
        data = load(root, bad_images="skip", validation_split=0)
    assert data.counts["bad_train_images_skipped"] == 1
    assert "bee/2.JPEG" not in paths(data.splits["train"]) and len(data.splits["train"]) == 7
    assert (
        f"{root / 'train.csv'}: skipping 1 unusable training image(s): "
        "line 8 bee/2.JPEG: is not an image file Pillow can read" in caplog.text
    )


def test_class_with_only_unusable_images_keeps_every_label_id(tmp_path):
    """Skipping must not renumber classes: label ids stay the competition's targets."""
    root = make_data(tmp_path, {"ant": 1, "bee": 2, "cat": 2}, {"train/ant/0.JPEG": b""})
    data = load(root, bad_images="skip", validation_split=0)
    assert data.class_names == ["ant", "bee", "cat"]
    train = data.splits["train"].with_format(None).remove_columns("image")
    assert dict(zip(train["image_path"], train["label"])) == {"bee/0.JPEG": 1, "bee/1.JPEG": 1, "cat/0.JPEG": 2, "cat/1.JPEG": 2}


def test_unusable_test_image_is_always_an_error(tmp_path):
    root = make_data(tmp_path, {"ant": 2, "bee": 2}, {"test/1.JPEG": TRUNCATED})
    with pytest.raises(SketchDataError, match=r"test\.csv: 1 unusable image\(s\): line 3 1\.JPEG: is truncated .*"
                                              r"Replace or delete these files\.$"):
        load(root, bad_images="skip")


def test_odd_sized_images_are_kept_and_counted(tmp_path, caplog):
    root = make_data(tmp_path, {"ant": 2, "bee": 2},
                     {"train/ant/1.JPEG": image_bytes((1, 1)), "test/0.JPEG": image_bytes((20000, 50))})
    with caplog.at_level(logging.WARNING, logger="sketch_data"):
        data = load(root, validation_split=0)
    assert (data.counts["odd_size_train_images"], data.counts["odd_size_test_images"]) == (1, 1)
    assert len(data.splits["train"]) == 4 and len(data.splits["test"]) == 2
    assert "1 image(s) of odd size, kept and resized like the others: line 3 ant/1.JPEG: is only 1x1 px" in caplog.text
    assert "line 2 0.JPEG: is a 20000x50 px strip" in caplog.text


def test_class_with_a_single_image_is_kept_in_train_and_counted(tmp_path, caplog):
    root = make_data(tmp_path, {"ant": 5, "bee": 5, "cat": 1})
    with caplog.at_level(logging.WARNING, logger="sketch_data"):
        data = load(root, validation_split=0.4)
    assert data.counts["rare_class_images_kept_in_train"] == 1
    assert "cat/0.JPEG" in paths(data.splits["train"])
    assert len(data.splits["validation"]) == 4 and "cat/0.JPEG" not in paths(data.splits["validation"])
    assert "1 image(s) of classes too small to stratify were kept in train only" in caplog.text


def test_classes_smaller_than_num_folds_stay_in_train_of_every_fold(tmp_path):
    root = make_data(tmp_path, {"ant": 4, "bee": 4, "cat": 2})
    for fold in range(3):
        data = load(root, num_folds=3, fold=fold)
        assert data.counts["rare_class_images_kept_in_train"] == 2
        assert {"cat/0.JPEG", "cat/1.JPEG"} <= set(paths(data.splits["train"]))


def test_counts_are_zero_for_clean_data(tmp_path):
    data = load(make_data(tmp_path, {"ant": 3, "bee": 3}))
    assert data.counts == {
        "duplicate_train_rows_dropped": 0, "bad_train_images_skipped": 0, "odd_size_train_images": 0,
        "rare_class_images_kept_in_train": 0, "odd_size_test_images": 0,
    }
