"""Bad options and messy data through `python run_classification.py`: one line and exit 2, or a counted policy."""

import contextlib
import io
import json

import pandas as pd
import pytest
import torch
from conftest import run_in_this_process, run_script, tiny_run_flags
from PIL import Image

OPTION_CASES = {
    "fp16 on a CPU-only machine": (
        ["--fp16", "true"],
        "error: fp16 needs a CUDA GPU and none is visible: use --precision bf16 or fp32 on this machine.",
    ),
    "fold >= num_folds": (
        ["--num_folds", "5", "--fold", "5"],
        "error: fold=5 with num_folds=5: need num_folds >= 2 and 0 <= fold < num_folds.",
    ),
    "batch size 0": (
        ["--per_device_train_batch_size", "0"],
        "error: per_device_train_batch_size and per_device_eval_batch_size must be at least 1.",
    ),
    "unknown timm architecture": (
        ["--model_name_or_path", "convnext_nonexistent"],
        "error: model_name_or_path='convnext_nonexistent' is not a timm architecture, a local folder or a Hub id "
        "(owner/name). Similar timm names: ",
    ),
    "checkpoint folder without config.json": (
        ["--model_name_or_path", "{empty_dir}"],
        "error: {empty_dir} has no config.json, so it is not a saved model. Point model_name_or_path at a run's "
        "output_dir or one of its checkpoint-* folders.",
    ),
    "unknown nan_policy": (["--nan_policy", "ignore"], "error: nan_policy='ignore': use stop or skip."),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_impossible_option_gives_one_line_and_exit_2(case, quickdraw_mini, tmp_path, capsys):
    """Through cli(), the function `python run_classification.py` exits with (the process itself: below)."""
    if case == "fp16 on a CPU-only machine" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU, so fp16 is possible")
    empty_dir = tmp_path / "empty_dir"
    empty_dir.mkdir()
    flags, expected = OPTION_CASES[case]
    code, _ = run_in_this_process(tiny_run_flags(quickdraw_mini, tmp_path / "run",
                                                 *(flag.format(empty_dir=empty_dir) for flag in flags)))
    assert code == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and error_lines[0].startswith(expected.format(empty_dir=empty_dir)), error_lines


def test_the_process_exits_2_with_the_one_line_and_no_traceback(quickdraw_mini, tmp_path):
    result = run_script("run_classification.py", *tiny_run_flags(quickdraw_mini, tmp_path, "--nan_policy", "ignore"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "error: nan_policy='ignore': use stop or skip."


def messy_copy(root, source):
    """quickdraw-mini plus: a duplicated row, a truncated image, a class with one 1x1 px image, test.csv with targets."""
    (root / "train" / "extra").mkdir(parents=True)
    for folder in (source / "train").iterdir():
        (root / "train" / folder.name).symlink_to(folder)
    (root / "test").symlink_to(source / "test")
    jpeg = (source / "test" / "0.JPEG").read_bytes()
    (root / "train" / "extra" / "truncated.JPEG").write_bytes(jpeg[: len(jpeg) // 3])
    Image.new("L", (1, 1), 255).save(root / "train" / "extra" / "dot.JPEG", "PNG")
    train = pd.read_csv(source / "train.csv")
    extra = pd.DataFrame({"class_name": [train.class_name[0], "zigzag"],
                          "image_path": ["extra/truncated.JPEG", "extra/dot.JPEG"],
                          "target": [train.target[0], 10]})
    pd.concat([train, train.iloc[[5]], extra]).to_csv(root / "train.csv", index=False)
    pd.read_csv(source / "solution.csv")[["image_path", "target"]].to_csv(root / "test.csv", index=False)
    return root


def test_messy_data_policies_are_counted_in_the_log_and_all_results(tmp_path, quickdraw_mini):
    data = messy_copy(tmp_path / "data", quickdraw_mini)
    output_dir = tmp_path / "run"
    code, log = run_in_this_process(tiny_run_flags(
        data, output_dir, "--bad_images", "skip", "--max_steps", "2", "--eval_strategy", "no", "--save_strategy", "no",
        "--load_best_model_at_end", "false"))
    assert code == 0, log[-3000:]
    expected = {
        "data_duplicate_train_rows_dropped": 1, "data_bad_train_images_skipped": 1, "data_odd_size_train_images": 1,
        "data_rare_class_images_kept_in_train": 1, "data_odd_size_test_images": 0,
    }
    for name in ("all_results.json", "train_results.json"):
        results = json.loads((output_dir / name).read_text())
        assert {k: v for k, v in results.items() if k.startswith("data_")} == expected, name
    csv = data / "train.csv"
    assert f"{csv}: dropped 1 duplicate row(s), line 82." in log
    assert f"{csv}: skipping 1 unusable training image(s): line 83 extra/truncated.JPEG: is truncated or corrupt" in log
    assert f"{csv}: 1 image(s) of odd size, kept and resized like the others: line 84 extra/dot.JPEG: is only 1x1 px" in log
    assert "1 image(s) of classes too small to stratify were kept in train only" in log
    assert f"{data / 'test.csv'}: ignoring column(s) ['target']; only image_path is used for prediction." in log
    submission = pd.read_csv(output_dir / "submission.csv")
    assert len(submission) == 20 and submission.target.between(0, 10).all()  # 11 classes with zigzag


def test_exclude_images_and_group_duplicates_act_on_a_doctor_s_issues_and_say_so(tmp_path, quickdraw_mini):
    train = pd.read_csv(quickdraw_mini / "train.csv")["image_path"].tolist()
    issues = tmp_path / "issues.csv"
    pd.DataFrame({"image_path": [f"train/{train[0]}", f"train/{train[1]}", f"train/{train[2]}", "test/0.JPEG"],
                  "issue": ["label", "cross_class_duplicate", "outlier", "train_test_duplicate"],
                  "score": [0.1, 0.9, 0.2, 0.9], "related_image_path": ["", f"train/{train[5]}", "", f"train/{train[3]}"],
                  "suggested_label": ["belt", "", "", "beach"]}).to_csv(issues, index=False)
    out = tmp_path / "run"
    code, log = run_in_this_process(tiny_run_flags(quickdraw_mini, out, "--num_train_epochs", "1", "--exclude_images",
                                                   str(issues), "--group_duplicates", "true"))
    assert code == 0, log
    assert "Excluding 2 of 80 training images, as --exclude_images asks: 1 label, 1 cross_class_duplicate." in log
    assert "--group_duplicates: 0 clusters of copies (0 images) are each kept on one side of the split." in log
    results = json.loads((out / "all_results.json").read_text())
    assert results["data_excluded_train_images"] == 2 and results["data_duplicate_clusters_kept_together"] == 0
    validated = pd.read_csv(out / "eval_predictions.csv")["image_path"].tolist()
    assert not {train[0], train[1]} & set(validated) and len(validated) == 16  # 20% of the 78 images left
    data = json.loads((out / "run_summary.json").read_text())["data"]
    assert data["exclude_images"] == str(issues.resolve()) and data["group_duplicates"] is True


def test_exclusions_that_leave_no_validation_image_are_one_line(tmp_path, quickdraw_mini):
    train = pd.read_csv(quickdraw_mini / "train.csv")
    excluded = train[train.duplicated("class_name")]["image_path"]  # one image of each class is left
    issues = tmp_path / "issues.csv"
    pd.DataFrame({"image_path": "train/" + excluded, "issue": "label", "score": 0.1, "related_image_path": "",
                  "suggested_label": ""}).to_csv(issues, index=False)
    with contextlib.redirect_stderr(io.StringIO()) as stderr:
        code, _ = run_in_this_process(tiny_run_flags(quickdraw_mini, tmp_path / "run", "--exclude_images", str(issues)))
    assert code == 2
    assert stderr.getvalue().splitlines()[-1] + "\n" == (
        f"error: {quickdraw_mini / 'train.csv'}: no image is left for validation: every class has too few images to "
        "hold some out (10 kept in train, 70 excluded by --exclude_images). Exclude fewer images, or pass "
        "--eval_strategy no --load_best_model_at_end false.\n")
