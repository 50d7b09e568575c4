"""scripts/train_kfold.py: one run per fold into sibling folders whose validation sets partition train.csv, finished
folds skipped, then the ensemble; bad flags stop before any fold."""

import contextlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import script_module

TINY = ["--model_name_or_path", "test_convnext", "--image_size", "32", "--num_train_epochs", "1", "--precision", "fp32",
        "--per_device_train_batch_size", "16", "--dataloader_num_workers", "0", "--head", "linear"]


@pytest.fixture(scope="module")
def kfold():
    return script_module("train_kfold")


@pytest.fixture(scope="module")
def three_folds(kfold, quickdraw_mini, tmp_path_factory):
    """(base output_dir, stdout of the first call) of 3 tiny folds on quickdraw-mini, trained in this process."""
    base = tmp_path_factory.mktemp("kfold") / "run"
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        code = kfold.main(["training_args/eva02_large_448_5fold_frozen.yaml", "3", "--data_dir", str(quickdraw_mini),
                           *TINY, "--output_dir", str(base)])
    assert code == 0, stdout.getvalue()[-3000:]
    return base, stdout.getvalue()


def test_each_fold_validates_on_its_own_third_of_train_csv(three_folds, quickdraw_mini):
    base, stdout = three_folds
    validated = []
    for fold in range(3):
        run = Path(f"{base}_fold{fold}")
        assert f"Fold {fold} of 3 -> {run}" in stdout
        data = json.loads((run / "run_summary.json").read_text())["data"]
        assert (data["num_folds"], data["fold"]) == (3, fold)
        validated.append(set(pd.read_csv(run / "eval_predictions.csv")["image_path"]))
    assert sum(map(len, validated)) == len(set.union(*validated))  # disjoint
    assert set.union(*validated) == set(pd.read_csv(quickdraw_mini / "train.csv")["image_path"])


def test_the_ensemble_covers_test_csv_with_the_out_of_fold_accuracy(three_folds, quickdraw_mini):
    base, stdout = three_folds
    ensemble = Path(f"{base}_ensemble")
    submission = pd.read_csv(ensemble / "submission.csv")
    assert submission["image_path"].tolist() == pd.read_csv(quickdraw_mini / "test.csv")["image_path"].tolist()
    results = json.loads((ensemble / "ensemble_results.json").read_text())
    assert results["runs"] == [f"{base}_fold{fold}" for fold in range(3)]
    assert results["oof_images"] == len(pd.read_csv(quickdraw_mini / "train.csv"))
    assert f"Out-of-fold accuracy on {results['oof_images']} images: {results['oof_accuracy']:.4f}" in stdout


def test_a_rerun_skips_the_finished_folds_and_ensembles_again(kfold, three_folds, quickdraw_mini, capsys):
    base, _ = three_folds
    models = [Path(f"{base}_fold{fold}") / "model.safetensors" for fold in range(3)]
    written = [model.stat().st_mtime_ns for model in models]
    (Path(f"{base}_ensemble") / "submission.csv").unlink()
    code = kfold.main(["training_args/eva02_large_448_5fold_frozen.yaml", "3", "--data_dir", str(quickdraw_mini),
                       *TINY, "--output_dir", str(base)])
    assert code == 0
    out = capsys.readouterr().out
    assert [f"Fold {fold}: {base}_fold{fold} is complete, skipping it." for fold in range(3)] == out.splitlines()[:3]
    assert [model.stat().st_mtime_ns for model in models] == written
    assert (Path(f"{base}_ensemble") / "submission.csv").is_file()


def test_bad_flags_stop_before_any_fold(kfold, tmp_path, capsys):
    """(tests/test_multiprocess.py runs the script as processes, under accelerate launch.)"""
    assert kfold.main(["training_args/demo.yaml", "2", "--validation_split", "2",
                       "--output_dir", str(tmp_path / "run")]) == 2
    out, err = capsys.readouterr()
    assert err == "error: validation_split=2.0: use a fraction in [0, 1).\n"
    assert "Fold" not in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [["training_args/demo.yaml"], ["training_args/demo.yaml", "five"]])
def test_a_missing_fold_count_prints_the_usage(kfold, argv, capsys):
    assert kfold.main(argv) == 2
    assert capsys.readouterr().err == "usage: train_kfold.py PRESET K [--flag value ...]\n"


def test_help_shows_how_to_run_it(kfold, capsys):
    assert kfold.main(["--help"]) == 0
    assert "python scripts/train_kfold.py training_args/eva02_large_448_5fold_frozen.yaml 5" in capsys.readouterr().out


def test_one_fold_is_not_a_k_fold_run(kfold, capsys):
    assert kfold.main(["training_args/demo.yaml", "1"]) == 2
    assert capsys.readouterr().err == "error: fold=0 with num_folds=1: need num_folds >= 2 and 0 <= fold < num_folds.\n"


def test_push_to_hub_is_refused_before_any_fold(kfold, tmp_path, capsys):
    """Every fold would push to the same repository, each over the one before."""
    assert kfold.main(["training_args/eva02_large_448_5fold_frozen.yaml", "5", "--push_to_hub", "true",
                       "--hub_model_id", "you/sketch-eva", "--output_dir", str(tmp_path / "run")]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: train_kfold.py does not push: its 5 folds would overwrite")
    assert f"python push_to_hub.py --output_dir {tmp_path / 'run'}_fold0 --repo_id you/sketch-eva" in err
    assert "Fold" not in out and list(tmp_path.iterdir()) == []


def test_duplicate_labels_relabel_the_ensemble_s_test_copies_only(kfold, three_folds, quickdraw_mini, tmp_path):
    base, _ = three_folds
    before = pd.read_csv(f"{base}_ensemble/submission.csv")
    train = pd.read_csv(quickdraw_mini / "train.csv")
    copied = train[train["target"] != before["target"][0]].iloc[0]  # a class the ensemble did not predict
    issues = tmp_path / "issues.csv"
    pd.DataFrame({"image_path": ["test/0.JPEG"], "issue": ["train_test_duplicate"], "score": [0.97],
                  "related_image_path": [f"train/{copied.image_path}"],
                  "suggested_label": [copied.class_name]}).to_csv(issues, index=False)
    with contextlib.redirect_stdout(io.StringIO()) as stdout:  # every fold is complete: only the ensemble runs
        assert kfold.main(["training_args/eva02_large_448_5fold_frozen.yaml", "3", "--data_dir", str(quickdraw_mini),
                           *TINY, "--output_dir", str(base), "--duplicate_labels", str(issues)]) == 0
    after = pd.read_csv(f"{base}_ensemble/submission.csv")
    assert after["target"][0] == copied.target
    pd.testing.assert_frame_equal(after.iloc[1:], before.iloc[1:])
    assert ("--duplicate_labels: 1 test image(s) took the class of the training drawing they copy; 1 prediction(s) "
            "changed.") in stdout.getvalue()


def test_duplicate_labels_without_a_file_is_one_line(kfold, quickdraw_mini, capsys):
    assert kfold.main(["training_args/eva02_large_448_5fold_frozen.yaml", "3", "--data_dir", str(quickdraw_mini),
                       "--duplicate_labels"]) == 2
    assert capsys.readouterr().err == "error: --duplicate_labels needs a value: the issues.csv of scripts/doctor.py.\n"
