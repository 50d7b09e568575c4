"""scripts/report.py: the files it writes, their exact counts, both input modes, and its errors."""

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_script
from PIL import Image

from scripts.report import main as report

REPORT_FILES = ["per_class.csv", "confused_pairs.csv", "confusion_top.png", "errors.png", "curves.png", "report.html"]


def copy_run(run: Path, to: Path, *names: str) -> Path:
    """A private copy of the files the report reads, so the shared tiny run stays untouched."""
    to.mkdir()
    for name in names:
        shutil.copy(run / name, to / name)
    return to


def hand_made_run(folder: Path, data_dir: Path, rows: list[tuple[int, int, float]]) -> Path:
    """A run folder with three classes and eval predictions (label, prediction, confidence) on real sketches."""
    folder.mkdir()
    names = ["beach", "belt", "camel"]
    (folder / "config.json").write_text(json.dumps({"label_names": names}))
    images = pd.read_csv(data_dir / "train.csv")["image_path"][: len(rows)]
    frame = pd.DataFrame(rows, columns=["label", "prediction", "confidence"])
    frame.insert(0, "image_path", list(images))
    frame.to_csv(folder / "eval_predictions.csv", index=False)
    return folder


def test_report_on_tiny_run_writes_every_file_with_exact_supports(tiny_run, quickdraw_mini, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run", "config.json", "eval_predictions.csv", "eval_logits.npy",
                   "trainer_state.json")
    result = run_script("scripts/report.py", "--run", str(run), "--data_dir", str(quickdraw_mini))
    assert result.returncode == 0, result.stderr[-3000:]
    assert [name for name in REPORT_FILES if not (run / name).is_file()] == []

    names = json.loads((run / "config.json").read_text())["label_names"]
    per_class = pd.read_csv(run / "per_class.csv")
    assert list(per_class["name"]) == names
    labels = pd.read_csv(run / "eval_predictions.csv")["label"]
    assert list(per_class["support"]) == [int((labels == i).sum()) for i in range(len(names))]

    page = (run / "report.html").read_text()
    for picture in ("curves.png", "confusion_top.png", "errors.png"):
        assert f"src='{picture}'" in page
        with Image.open(run / picture) as image:
            assert min(image.size) >= 300


def test_report_with_only_the_run_reads_the_data_location_the_run_saved(tiny_run, tmp_path):
    """`report.py --run <run>` and nothing else: run_summary.json says where the validation images are."""
    run = copy_run(tiny_run, tmp_path / "run", "config.json", "eval_predictions.csv", "eval_logits.npy",
                   "trainer_state.json", "run_summary.json")
    result = run_script("scripts/report.py", "--run", str(run))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "validation split (16 images)" in (run / "report.html").read_text()


def test_run_without_validation_is_scored_on_the_answer_key_beside_its_test_csv(tiny_run, quickdraw_mini, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run", "config.json", "submission.csv", "test_logits.npy",
                   "trainer_state.json", "run_summary.json")
    result = run_script("scripts/report.py", "--run", str(run))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test set against solution.csv (20 images)" in (run / "report.html").read_text()
    key = pd.read_csv(quickdraw_mini / "solution.csv")
    assert pd.read_csv(run / "per_class.csv")["support"].sum() == len(key)


def test_flags_override_the_saved_data_location(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run", "config.json", "eval_predictions.csv", "run_summary.json")
    assert report(["--run", str(run), "--data_dir", str(tmp_path / "elsewhere")]) == 2  # not the saved folder


def test_confused_pairs_and_scores_are_exact_for_hand_made_predictions(quickdraw_mini, tmp_path):
    rows = [(0, 0, 0.9), (0, 1, 0.8), (0, 1, 0.7), (0, 1, 0.6), (1, 1, 0.9), (1, 0, 0.95),
            (2, 1, 0.5), (2, 1, 0.4), (2, 2, 0.9)]
    run = hand_made_run(tmp_path / "run", quickdraw_mini, rows)
    assert report(["--run", str(run), "--data_dir", str(quickdraw_mini)]) == 0

    pairs = pd.read_csv(run / "confused_pairs.csv")
    assert pairs[["true_name", "predicted_name", "count"]].values.tolist() == [
        ["beach", "belt", 3], ["camel", "belt", 2], ["belt", "beach", 1]]
    assert list(pairs["share_of_true"]) == [0.75, 0.6667, 0.5]
    per_class = pd.read_csv(run / "per_class.csv")
    assert per_class[["precision", "recall", "support"]].values.tolist() == [
        [0.5, 0.25, 4], [0.1667, 0.5, 2], [1.0, 0.3333, 3]]
    # No logits and no trainer_state.json: no curves, and the page says why instead of showing a broken image.
    assert not (run / "curves.png").exists()
    assert "No trainer_state.json" in (run / "report.html").read_text()
    assert "Data doctor" not in (run / "report.html").read_text()


def test_solution_mode_scores_submission_against_the_answer_key(tiny_run, quickdraw_mini, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run", "config.json", "submission.csv", "test_logits.npy")
    solution = quickdraw_mini / "solution.csv"
    assert report(["--run", str(run), "--solution", str(solution)]) == 0

    key = pd.read_csv(solution)
    per_class = pd.read_csv(run / "per_class.csv")
    assert list(per_class["support"]) == [int((key["target"] == i).sum()) for i in range(len(per_class))]
    accuracy = (pd.read_csv(run / "submission.csv")["target"] == key["target"]).mean()
    assert f"<td>{accuracy:.4f}</td>" in (run / "report.html").read_text()
    assert (run / "errors.png").is_file() and (run / "confusion_top.png").is_file()


def test_errors_gallery_is_ordered_most_confident_mistake_first(quickdraw_mini, tmp_path):
    from scripts.report import validation_predictions, worst_errors

    rows = [(0, 1, 0.6), (1, 0, 0.95), (2, 2, 0.99), (2, 1, 0.7)]
    run = hand_made_run(tmp_path / "run", quickdraw_mini, rows)
    predictions = validation_predictions(run, quickdraw_mini / "train")
    errors = worst_errors(predictions, ["beach", "belt", "camel"], count=10)
    assert [(e["true"], e["pred"], e["confidence"]) for e in errors] == [
        ("belt", "beach", 0.95), ("camel", "belt", 0.7), ("beach", "belt", 0.6)]


def doctor_output(folder: Path, page: bool = True) -> Path:
    """A data doctor's output folder (scripts/doctor.py): issues.csv, and its report.html unless `page` is False."""
    folder.mkdir(parents=True)
    (folder / "issues.csv").write_text("image_path,issue,score,related_image_path,suggested_label\n")
    if page:
        (folder / "report.html").write_text("<!doctype html><title>Data doctor report</title>")
    return folder


def doctor_link(run: Path) -> Path | None:
    """Where the run's report.html links the doctor's page, resolved; None without a Data doctor section."""
    found = re.search(r"<h2>Data doctor</h2><p>[^<]*<a href='([^']+)'", (run / "report.html").read_text())
    return (run / found.group(1)).resolve() if found else None


@pytest.mark.parametrize("page", [True, False])
def test_run_trained_without_a_doctors_images_links_its_report(page, quickdraw_mini, tmp_path):
    doctor = doctor_output(tmp_path / "doctor", page)
    run = hand_made_run(tmp_path / "run", quickdraw_mini, [(0, 1, 0.9), (1, 1, 0.8)])
    data = {"train_dir": str(quickdraw_mini / "train"), "exclude_images": str(doctor / "issues.csv")}
    (run / "run_summary.json").write_text(json.dumps({"data": data}))
    assert report(["--run", str(run)]) == 0
    if page:
        assert doctor_link(run) == (doctor / "report.html").resolve()
        assert "href='../doctor/report.html'" in (run / "report.html").read_text()  # relative: both can move
        assert f"trained without the images listed in {doctor / 'issues.csv'}" in (run / "report.html").read_text()
    else:  # the issues.csv alone (a doctor run without its page): nothing to link
        assert "Data doctor" not in (run / "report.html").read_text()


def test_doctor_flag_links_its_report(quickdraw_mini, tmp_path):
    doctor = doctor_output(tmp_path / "elsewhere" / "doctor")
    run = hand_made_run(tmp_path / "run", quickdraw_mini, [(0, 1, 0.9), (1, 1, 0.8)])
    assert report(["--run", str(run), "--data_dir", str(quickdraw_mini), "--doctor", str(doctor)]) == 0
    assert doctor_link(run) == (doctor / "report.html").resolve()
    assert "trained without" not in (run / "report.html").read_text()  # this run excluded nothing


def bad_inputs(case: str, run: Path, data_dir: Path) -> tuple[list[str], str]:
    """Arguments that must fail, and the text the one-line error must hold."""
    if case == "no predictions":
        (run / "eval_predictions.csv").unlink()
        return ["--data_dir", str(data_dir)], f"{run} has neither eval_predictions.csv"
    if case == "no answer key":
        (run / "eval_predictions.csv").unlink()
        (run / "submission.csv").write_text("ID,image_path,target\n")
        return [], f"{run} has no eval_predictions.csv (it had no validation split) and no answer key"
    if case == "no data_dir":
        return [], "errors.png needs the run's training images and the run saved no data location"
    if case == "wrong data_dir":
        return ["--data_dir", str(run)], f"image {run / 'train'}/"
    if case == "unknown class":
        frame = pd.read_csv(run / "eval_predictions.csv")
        frame.loc[1, "prediction"] = 7
        frame.to_csv(run / "eval_predictions.csv", index=False)
        return ["--data_dir", str(data_dir)], "prediction 7 is not a class of this run (0..2)"
    if case == "no doctor page":
        doctor_output(run / "doctor", page=False)
        return ["--data_dir", str(data_dir), "--doctor", str(run / "doctor")], (
            f"{run / 'doctor' / 'report.html'} not found; --doctor must be an output folder of scripts/doctor.py")
    if case == "mismatched solution":
        pd.DataFrame({"ID": [0], "image_path": ["x.JPEG"], "target": [0]}).to_csv(run / "submission.csv", index=False)
        return ["--solution", str(data_dir / "solution.csv")], (
            f"{run / 'submission.csv'} and {data_dir / 'solution.csv'} do not list the same image_path values")
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["no predictions", "no answer key", "no data_dir", "wrong data_dir", "unknown class",
                                  "mismatched solution", "no doctor page"])
def test_bad_input_is_one_clear_error_line(case, quickdraw_mini, tmp_path, capsys):
    run = hand_made_run(tmp_path / "run", quickdraw_mini, [(0, 1, 0.9), (1, 1, 0.8), (2, 0, 0.7)])
    flags, message = bad_inputs(case, run, quickdraw_mini)
    assert report(["--run", str(run), *flags]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1
    assert message in error


def test_missing_run_folder_is_a_clear_error(tmp_path, capsys):
    assert report(["--run", str(tmp_path / "nope"), "--data_dir", "x"]) == 2
    assert f"run folder {tmp_path / 'nope'} not found" in capsys.readouterr().err
