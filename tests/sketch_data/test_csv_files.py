"""train.csv and test.csv problems: each is an error naming the file and CSV line, or a counted policy."""

import logging
import re

import pytest

from sketch_data import SketchDataError
from sketch_data.csv_files import read_test_csv, read_train_csv

HEADER = "class_name,image_path,target"
ROWS = ["ant,ant/1.JPEG,0", "ant,ant/2.JPEG,0", "bee,bee/1.JPEG,1", "bee,bee/2.JPEG,1"]


@pytest.fixture
def data(tmp_path):
    """A train folder holding the four images of ROWS (reading the CSV only checks that they exist)."""
    for row in ROWS:
        path = tmp_path / "train" / row.split(",")[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return tmp_path


def write(folder, text: str, name: str = "train.csv"):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def train_error(data, text: str) -> str:
    csv = write(data, text)
    with pytest.raises(SketchDataError) as raised:
        read_train_csv(csv, data / "train")
    return str(raised.value)


def lines(*rows: str) -> str:
    return "\n".join(rows) + "\n"


def test_clean_file_gives_rows_with_line_numbers_and_absolute_files(data):
    frame, counts = read_train_csv(write(data, lines(HEADER, *ROWS)), data / "train")
    assert frame.line.tolist() == [2, 3, 4, 5]
    assert frame.target.tolist() == [0, 0, 1, 1]
    assert frame.file.tolist() == [str(data / "train" / r.split(",")[1]) for r in ROWS]
    assert counts == {"duplicate_train_rows_dropped": 0}


def test_missing_column(data):
    csv = data / "train.csv"
    message = train_error(data, lines("class_name,image_path", "ant,ant/1.JPEG"))
    assert message == (
        f"{csv}: missing column(s) ['target']; found ['class_name', 'image_path']. "
        "The header must be class_name,image_path,target."
    )


def test_whitespace_and_bom_in_header_and_values_are_ignored(data):
    csv = data / "train.csv"
    csv.write_bytes("\ufeff class_name , image_path ,target \n".encode("utf-8") + lines(*ROWS).replace(",", " , ").encode())
    frame, _ = read_train_csv(csv, data / "train")
    assert frame[["class_name", "image_path", "target"]].values.tolist() == [
        ["ant", "ant/1.JPEG", 0], ["ant", "ant/2.JPEG", 0], ["bee", "bee/1.JPEG", 1], ["bee", "bee/2.JPEG", 1]
    ]


def test_missing_image_names_its_line(data):
    message = train_error(data, lines(HEADER, *ROWS[:2], "ant,ant/9.JPEG,0", *ROWS[2:]))
    assert message == (
        f"{data / 'train.csv'}: line 4: image not found under {data / 'train'} (first: 'ant/9.JPEG'). "
        "Restore the files or delete those rows."
    )


def test_blank_lines_are_skipped_and_line_numbers_stay_exact(data):
    message = train_error(data, lines(HEADER, ROWS[0], "", ROWS[1], "ant,ant/9.JPEG,0", *ROWS[2:]))
    assert message.startswith(f"{data / 'train.csv'}: line 5: image not found")


def test_duplicate_rows_are_dropped_and_counted(data, caplog):
    csv = write(data, lines(HEADER, *ROWS, ROWS[0], ROWS[2]))
    with caplog.at_level(logging.WARNING, logger="sketch_data"):
        frame, counts = read_train_csv(csv, data / "train")
    assert counts == {"duplicate_train_rows_dropped": 2}
    assert frame.line.tolist() == [2, 3, 4, 5]
    assert f"{csv}: dropped 2 duplicate row(s), lines 6, 7." in caplog.text


def test_duplicate_path_with_different_labels_is_an_error(data):
    message = train_error(data, lines(HEADER, *ROWS, "bee,ant/1.JPEG,1"))
    assert message == (
        f"{data / 'train.csv'}: lines 2, 6: image_path 'ant/1.JPEG' appears with different labels. "
        "Keep the row with the right label and delete the others."
    )


def test_target_contradicting_class_name(data):
    message = train_error(data, lines(HEADER, ROWS[0], "ant,ant/2.JPEG,1", *ROWS[2:]))
    assert message == (
        f"{data / 'train.csv'}: line 3: target contradicts class_name: line 3 gives 'ant' target 1, but 'ant' is "
        "class 0 of the 2 class names in sorted order. Fix the target column "
        "(target = index of class_name among the sorted class names)."
    )


def test_targets_not_zero_to_n_minus_one(data):
    one_based = [re.sub(r"(\d)$", lambda m: str(int(m.group(1)) + 1), row) for row in ROWS]
    message = train_error(data, lines(HEADER, *one_based))
    assert message == (
        f"{data / 'train.csv'}: targets must be 0..1, one per class name in sorted order, but they run from 1 to 2 "
        "with 2 distinct values for 2 class names. "
        "Renumber the target column (target = index of class_name among the sorted class names)."
    )


def test_target_that_is_not_an_integer(data):
    message = train_error(data, lines(HEADER, *ROWS[:3], "bee,bee/2.JPEG,one"))
    assert message == (
        f"{data / 'train.csv'}: line 5: target 'one' is not an integer; targets are class numbers 0..N-1."
    )


def test_empty_file_and_header_only(data):
    csv = data / "train.csv"
    assert train_error(data, "") == (
        f"{csv}: the file is empty; expected a header line class_name,image_path,target and one row per image."
    )
    assert train_error(data, lines(HEADER, "")) == f"{csv}: has a header but no rows; add one row per image."


def test_empty_value(data):
    message = train_error(data, lines(HEADER, *ROWS, "bee,,1"))
    assert message == (
        f"{data / 'train.csv'}: line 6: empty value in ['class_name', 'image_path', 'target']; "
        "fill in or delete those rows."
    )


def test_stray_comma_names_the_line(data):
    message = train_error(data, lines(HEADER, *ROWS[:2], "ant,ant/2,x.JPEG,0"))
    assert message == (
        f"{data / 'train.csv'}: cannot be read as CSV: Expected 3 fields in line 4, saw 4. "
        "Quote values that contain commas."
    )


def test_not_utf8(data):
    csv = data / "train.csv"
    csv.write_bytes(lines(HEADER, *ROWS).encode() + "ant,\xe9t\xe9.JPEG,0\n".encode("latin-1"))
    with pytest.raises(SketchDataError, match=re.escape(f"{csv}: is not UTF-8 text (byte")):
        read_train_csv(csv, data / "train")


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "ant/../../train.csv"])
def test_paths_escaping_the_image_folder_are_rejected(data, path):
    message = train_error(data, lines(HEADER, *ROWS, f"ant,{path},0"))
    assert message == (
        f"{data / 'train.csv'}: line 6: image_path {path!r} points outside the image folder {data / 'train'}. "
        "image_path must be relative to that folder and stay inside it."
    )


def test_symlink_inside_the_folder_is_followed(data, tmp_path_factory):
    """Only the text of image_path is confined: links the data's owner placed (a cache, git-annex) still work."""
    blob = tmp_path_factory.mktemp("cache") / "blob"
    blob.write_bytes(b"")
    (data / "train" / "bee" / "3.JPEG").symlink_to(blob)
    frame, _ = read_train_csv(write(data, lines(HEADER, *ROWS, "bee,bee/3.JPEG,1")), data / "train")
    assert frame.file.iloc[-1] == str(data / "train" / "bee" / "3.JPEG")


def test_test_csv_missing_image(data):
    csv = write(data, lines("image_path", "ant/1.JPEG", "ant/7.JPEG"), "test.csv")
    with pytest.raises(SketchDataError) as raised:
        read_test_csv(csv, data / "train")
    assert str(raised.value) == (
        f"{csv}: line 3: image not found under {data / 'train'} (first: 'ant/7.JPEG'). "
        "Restore the files or delete those rows."
    )


def test_test_csv_duplicate_paths(data):
    csv = write(data, lines("image_path", "ant/1.JPEG", "ant/2.JPEG", "ant/1.JPEG"), "test.csv")
    with pytest.raises(SketchDataError) as raised:
        read_test_csv(csv, data / "train")
    assert str(raised.value) == (
        f"{csv}: lines 2, 4: image_path 'ant/1.JPEG' appears more than once. "
        "A submission needs exactly one row per test image: delete the repeated rows."
    )


def test_test_csv_extra_target_column_is_ignored(data, caplog):
    csv = write(data, lines("image_path,target", "ant/1.JPEG,0", "bee/1.JPEG,not-a-number"), "test.csv")
    with caplog.at_level(logging.WARNING, logger="sketch_data"):
        frame = read_test_csv(csv, data / "train")
    assert list(frame.columns) == ["line", "image_path", "file"]
    assert frame.image_path.tolist() == ["ant/1.JPEG", "bee/1.JPEG"]
    assert f"{csv}: ignoring column(s) ['target']; only image_path is used for prediction." in caplog.text
