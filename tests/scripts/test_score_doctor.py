"""sketch_data.doctor_score and scripts/score_doctor.py: exact precision and recall on hand-made truth and issues,
duplicates matched by cluster, and one-line errors for bad input."""

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import script_module

from sketch_data.doctor_score import oof_accuracies, score_doctor

S1, C1, C2, T1 = "train/cat/s1.JPEG", "train/cat/c1.JPEG", "train/dog/c2.JPEG", "test/30.JPEG"
S2, C3, X, A, B = "train/dog/s2.JPEG", "train/dog/c3.JPEG", "train/dog/x.JPEG", "train/cat/a.JPEG", "train/cat/b.JPEG"
F1, F2, F3 = "train/dog/f1.JPEG", "train/cat/f2.JPEG", "train/cat/f3.JPEG"

INJECTED = pd.DataFrame([  # two true clusters: {S1, C1, C2, T1} and {S2, C3}; four flipped or mislabelled images
    (C1, "duplicate", S1, "cat", "cat", "rot90+jpeg70"),
    (C2, "cross_class_duplicate", S1, "cat", "dog", "jpeg80"),
    (T1, "train_test_duplicate", S1, "cat", "", "hflip+rescale0.90+jpeg61"),
    (C3, "duplicate", S2, "dog", "dog", "jpeg95"),
    (F1, "label", "", "cat", "dog", ""),
    (F2, "label", "", "dog", "cat", ""),
    (F3, "label", "", "dog", "cat", ""),
], columns=["image_path", "kind", "related_image_path", "true_label", "given_label", "transform"])

ISSUES = pd.DataFrame([
    (C1, "near_duplicate", 0.9, C2, ""),  # C1 and C2 are copies of one source: right, though neither is S1
    (C2, "cross_class_duplicate", 0.9, S1, "cat"),
    (T1, "train_test_duplicate", 0.9, C1, ""),  # joins T1 to S1 through C1 and C2
    (C3, "duplicate", 0.8, X, ""),  # wrong: so the (C3, S2) pair is missed
    (A, "duplicate", 0.7, B, ""),  # wrong: neither was injected
    (B, "duplicate", 0.7, "", ""),  # relates to nothing: ignored
    (F1, "label", 0.8, "", "cat"),
    (F2, "label", 0.8, "", "sheep"),  # found, with a wrong suggestion
    (C2, "label", 0.7, "", "cat"),
    (X, "label", 0.6, "", "cat"),  # not mislabelled; F3 is never flagged
    (A, "blurry", 0.5, "", ""),
], columns=["image_path", "issue", "score", "related_image_path", "suggested_label"])


@pytest.fixture
def csvs(tmp_path) -> tuple[Path, Path]:
    INJECTED.to_csv(tmp_path / "injected.csv", index=False)
    ISSUES.to_csv(tmp_path / "issues.csv", index=False)
    return tmp_path / "issues.csv", tmp_path / "injected.csv"


def test_duplicates_are_matched_by_cluster(csvs):
    duplicates = score_doctor(*csvs)["duplicates"]
    assert (duplicates["precision"], duplicates["recall"]) == (3 / 5, 3 / 4)
    assert (duplicates["tp"], duplicates["fp"], duplicates["fn"]) == (3, 2, 1)
    assert {kind: row["recall"] for kind, row in duplicates["recall_by_kind"].items()} == {
        "duplicate": 1 / 2, "cross_class_duplicate": 1.0, "train_test_duplicate": 1.0}
    assert {issue: (row["tp"], row["fp"]) for issue, row in duplicates["precision_by_issue"].items()} == {
        "duplicate": (0, 2), "near_duplicate": (1, 0), "cross_class_duplicate": (1, 0), "train_test_duplicate": (1, 0)}


def test_label_issues_count_flips_and_cross_class_copies(csvs):
    label = score_doctor(*csvs)["label"]
    assert (label["tp"], label["fp"], label["fn"]) == (3, 1, 1)  # F1, F2, C2 found; X wrong; F3 missed
    assert (label["precision"], label["recall"], label["suggested_label_accuracy"]) == (3 / 4, 3 / 4, 2 / 3)


def test_script_prints_a_table_and_writes_json(csvs, tmp_path, capsys):
    main = script_module("score_doctor").main
    assert main(["--issues", str(csvs[0]), "--injected", str(csvs[1]), "--output", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "| detector | precision | recall | TP | FP | FN |" in out
    assert "| duplicates (all) | 0.600 | 0.750 | 3 | 2 | 1 |" in out and "| label | 0.750 | 0.750 | 3 | 1 | 1 |" in out
    assert json.loads((tmp_path / "s.json").read_text()) == json.loads(json.dumps(score_doctor(*csvs)))

    ISSUES.iloc[:0].to_csv(tmp_path / "none.csv", index=False)  # no issues at all: precision of nothing is null
    assert main(["--issues", str(tmp_path / "none.csv"), "--injected", str(csvs[1]), "--output",
                 str(tmp_path / "none.json")]) == 0
    scores = json.loads((tmp_path / "none.json").read_text())
    assert scores["label"]["precision"] is None and scores["label"]["recall"] == 0.0


def test_script_scores_a_submission_on_the_original_test_images(csvs, tmp_path, capsys):
    pd.DataFrame({"ID": [0, 1], "image_path": ["0.JPEG", "1.JPEG"], "target": [3, 4]}).to_csv(
        tmp_path / "solution_original.csv", index=False)
    pd.DataFrame({"image_path": ["0.JPEG", "1.JPEG", "30.JPEG"], "target": [3, 0, 2]}).to_csv(
        tmp_path / "submission.csv", index=False)
    main = script_module("score_doctor").main
    assert main(["--injected", str(csvs[1]), "--submission", str(tmp_path / "submission.csv")]) == 0
    assert "accuracy on the original test images 0.5000" in capsys.readouterr().out


@pytest.mark.parametrize("broken", ["missing_file", "missing_column"])
def test_bad_input_is_one_line_naming_the_file(csvs, capsys, broken):
    issues, injected = csvs
    if broken == "missing_file":
        issues.unlink()
    else:
        INJECTED.drop(columns="true_label").to_csv(injected, index=False)
    main = script_module("score_doctor").main
    assert main(["--issues", str(issues), "--injected", str(injected)]) == 2
    error = capsys.readouterr().err.strip()
    named = issues if broken == "missing_file" else injected
    assert len(error.splitlines()) == 1 and error.startswith(f"error: {named}")
    assert broken == "missing_file" or "true_label" in error


def test_out_of_fold_accuracy_against_given_and_true_labels(tmp_path):
    injected = INJECTED
    for fold, rows in enumerate([[("cat/a.JPEG", "cat", "cat"), ("dog/f1.JPEG", "dog", "cat")],  # F1 really is a cat
                                 [("cat/f2.JPEG", "cat", "dog"), ("dog/x.JPEG", "dog", "cat")]]):
        run = tmp_path / f"kfold_fold{fold}"
        run.mkdir()
        pd.DataFrame(rows, columns=["image_path", "label_name", "prediction_name"]).to_csv(
            run / "eval_predictions.csv", index=False)
    assert oof_accuracies(str(tmp_path / "kfold"), injected) == {
        "images": 4, "against_given_labels": 0.25, "against_true_labels": 0.75}
    with pytest.raises(ValueError, match="kfold_missing_fold0: no such folder"):
        oof_accuracies(str(tmp_path / "kfold_missing"), injected)
