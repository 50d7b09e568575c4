"""scripts/doctor.py on a noisy copy of quickdraw-mini with a known truth (sketch_data/noisy_copy.py): each detector
finds what was injected, issues.csv and report.html are written, and bad inputs are one line naming the file."""

import contextlib
import io
import json

import numpy as np
import pandas as pd
import PIL.Image
import pytest
from conftest import run_script, script_module

from sketch_data.doctor_score import score_duplicates, score_labels
from sketch_data.issues_file import COLUMNS
from sketch_data.noisy_copy import NoiseCounts, make_noisy_copy

NOISE = NoiseCounts(label_noise=0.05, within_class=3, cross_class=2, train_test=2)


@pytest.fixture(scope="module")
def doctor():
    return script_module("doctor")


@pytest.fixture(scope="module")
def noisy(quickdraw_mini, tmp_path_factory):
    """A noisy copy of quickdraw-mini (4 labels flipped; 7 copies), plus a blank test page: (folder, injected)."""
    folder = tmp_path_factory.mktemp("noisy") / "data"
    injected = make_noisy_copy(quickdraw_mini, folder, NOISE, seed=1)
    PIL.Image.new("L", (256, 256), 255).save(folder / "test" / "blank.JPEG")
    with open(folder / "test.csv", "a") as test_csv:
        test_csv.write("blank.JPEG\n")
    return folder, injected


def true_oof_run(prefix, noisy_dir, injected, folds: int = 2):
    """Fold folders as scripts/train_kfold.py leaves them, whose out-of-fold logits favour each image's true class."""
    train = pd.read_csv(noisy_dir / "train.csv")
    classes = sorted(train["class_name"].unique())
    truth = dict(zip(injected["image_path"].str.removeprefix("train/"), injected["true_label"]))
    true_class = [classes.index(truth.get(path, name)) for path, name in zip(train["image_path"], train["class_name"])]
    for fold in range(folds):
        rows = np.arange(fold, len(train), folds)
        logits = np.full((len(rows), len(classes)), -4.0, dtype=np.float32)
        logits[np.arange(len(rows)), np.asarray(true_class)[rows]] = 4.0
        run = prefix.parent / f"{prefix.name}_fold{fold}"
        run.mkdir(parents=True)
        pd.DataFrame({"image_path": train["image_path"][rows], "label": train["target"][rows],
                      "prediction": logits.argmax(1)}).to_csv(run / "eval_predictions.csv", index=False)
        np.save(run / "eval_logits.npy", logits)
    return prefix


@pytest.fixture(scope="module")
def examined(doctor, noisy, tmp_path_factory):
    """The doctor's output folder, its issues and stdout, with out-of-fold probabilities from --oof."""
    folder, injected = noisy
    oof = true_oof_run(tmp_path_factory.mktemp("kfold") / "run", folder, injected)
    output = tmp_path_factory.mktemp("doctor")
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        code = doctor.main(["--data_dir", str(folder), "--output_dir", str(output), "--oof", str(oof),
                            "--model_name_or_path", "test_convnext", "--image_size", "32", "--precision", "fp32"])
    assert code == 0, stdout.getvalue()
    return output, pd.read_csv(output / "issues.csv", keep_default_na=False), stdout.getvalue()


def test_every_injected_copy_is_found_and_nothing_else(examined, noisy):
    scores = score_duplicates(examined[1], noisy[1])
    assert (scores["precision"], scores["recall"]) == (1.0, 1.0), scores


def test_every_flipped_label_is_found_from_the_out_of_fold_probabilities_with_its_true_class(examined, noisy):
    scores = score_labels(examined[1], noisy[1])
    assert (scores["precision"], scores["recall"], scores["suggested_label_accuracy"]) == (1.0, 1.0, 1.0), scores


def test_test_copies_name_their_training_image_and_its_class(examined, noisy):
    issues, injected = examined[1], noisy[1]
    found = issues[issues["issue"] == "train_test_duplicate"].set_index("image_path")
    truth = injected[injected["kind"] == "train_test_duplicate"].set_index("image_path")
    assert sorted(found.index) == sorted(truth.index)
    assert (found.loc[truth.index, "suggested_label"] == truth["true_label"]).all()


def test_a_blank_page_is_a_quality_issue(examined):
    issues = examined[1]
    assert issues[issues["image_path"] == "test/blank.JPEG"]["issue"].tolist() == ["low_information"]


def test_the_files_and_the_summary(examined):
    output, issues, stdout = examined
    assert issues.columns.tolist() == COLUMNS
    assert issues["image_path"].str.match(r"^(train|test)/").all()
    summary = json.loads((output / "doctor_summary.json").read_text())
    assert summary["train images"] == 80 + 5 and summary["test images"] == 20 + 2 + 1
    assert summary["issue train_test_duplicate"] == 2
    assert f"Wrote {output / 'issues.csv'} ({len(issues)} rows)" in stdout
    page = (output / "report.html").read_text()
    assert all(f"id='issue-{issue}'" in page or f'id="issue-{issue}"' in page for issue in set(issues["issue"]))


def test_the_doctor_s_own_folds_run_on_the_backbone_features(doctor, noisy, tmp_path):
    """Without --oof: a 2-fold linear head on a tiny backbone's features (too weak to find labels: it runs)."""
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        code = doctor.main(["--data_dir", str(noisy[0]), "--output_dir", str(tmp_path), "--folds", "2", "--skip",
                            "quality", "--model_name_or_path", "test_convnext", "--image_size", "32",
                            "--precision", "fp32"])
    assert code == 0
    assert "== out-of-fold probabilities" in stdout.getvalue() and "out-of-fold accuracy:" in stdout.getvalue()
    assert (tmp_path / "issues.csv").is_file()


def test_a_folder_without_train_csv_is_one_line_naming_it(tmp_path):
    result = run_script("scripts/doctor.py", "--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "out"),
                        "--skip", "labels", "quality")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {tmp_path / 'train.csv'}: file not found")
    assert result.stderr.count("\n") == 1, result.stderr


def test_an_oof_run_that_is_not_there_stops_before_any_work(doctor, noisy, tmp_path, capsys):
    code = doctor.main(["--data_dir", str(noisy[0]), "--output_dir", str(tmp_path / "out"), "--oof",
                        str(tmp_path / "nothing"), "--model_name_or_path", "test_convnext"])
    assert code == 2
    output = capsys.readouterr()
    assert "== reading" not in output.out and not (tmp_path / "out").exists()
    assert output.err == (f"error: --oof {tmp_path / 'nothing'}: no folder {tmp_path / 'nothing'}_fold0, "
                                       f"{tmp_path / 'nothing'}_fold1, ...; pass the output_dir that "
                                       "scripts/train_kfold.py was given.\n")


def test_a_pair_across_classes_takes_the_class_the_out_of_fold_probabilities_favour(examined, noisy):
    """Two images have no majority: the --oof probabilities (here, of the true classes) tell which label is right,
    so that --exclude_images keeps the original and leaves the mislabelled copy out."""
    issues, injected = examined[1], noisy[1]
    rows = issues[issues["issue"] == "cross_class_duplicate"].set_index("image_path")["suggested_label"]
    pairs = injected[injected["kind"] == "cross_class_duplicate"]
    assert len(pairs) == 2
    for copy, source, true_class in zip(pairs["image_path"], pairs["related_image_path"], pairs["true_label"]):
        assert rows[copy] == rows[source] == true_class
