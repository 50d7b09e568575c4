"""scripts/ablation_table.py: exact means, spreads, differences and times from hand-made run folders; and
scripts/ablation.sh's DRY_RUN plan: every row x seed once, each with its row's options, finished runs skipped."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_script

from run_classification import parse
from scripts.ablation_table import ablation_rows, markdown_table
from scripts.ablation_table import main as ablation_table

REPO = Path(__file__).resolve().parents[2]
TARGETS = list(range(8))  # 8 test images, so every accuracy is a multiple of 1/8: exact in binary


@pytest.fixture
def solution(tmp_path) -> Path:
    path = tmp_path / "solution.csv"
    pd.DataFrame({"ID": TARGETS, "image_path": [f"{i}.JPEG" for i in TARGETS], "target": TARGETS}).to_csv(
        path, index=False)
    return path


def fake_run(folder: Path, correct: int, train_runtime: float | None = None) -> Path:
    """A finished run whose submission gets the first `correct` of the 8 test images right."""
    folder.mkdir(parents=True)
    targets = [t if i < correct else (t + 1) % 8 for i, t in enumerate(TARGETS)]
    pd.DataFrame({"ID": TARGETS, "image_path": [f"{i}.JPEG" for i in TARGETS], "target": targets}).to_csv(
        folder / "submission.csv", index=False)
    if train_runtime is not None:
        (folder / "all_results.json").write_text(json.dumps({"train_runtime": train_runtime, "eval_accuracy": 0.1}))
    return folder


def fake_kfold(folder: Path, correct: int, fold_runtimes: list[float]) -> None:
    for fold, seconds in enumerate(fold_runtimes):
        fake_run(folder / f"run_fold{fold}", 0, seconds)
    fake_run(folder / "run_ensemble", correct)


@pytest.fixture
def ablation(tmp_path) -> Path:
    out = tmp_path / "ablation"
    fake_run(out / "baseline_seed0", 4, 60)
    fake_run(out / "baseline_seed1", 6, 120)
    fake_run(out / "mixup_cutmix_seed0", 6, 90)
    fake_run(out / "mixup_cutmix_seed1", 7, 90)
    fake_run(out / "tta_hflip_seed0", 3)  # predict-only: no training time
    fake_run(out / "tta_hflip_seed1", 5)
    fake_kfold(out / "kfold5_seed0", 8, [30, 30])
    fake_kfold(out / "kfold5_seed1", 8, [60, 60])
    (out / "ema_seed0" / "checkpoint-5").mkdir(parents=True)  # interrupted: no submission yet
    (out / "preresize_cache").mkdir()
    return out


TABLE = """\
| row          | seeds | test accuracy % | per seed %     | vs baseline (points) | train time per seed |
| ------------ | ----: | --------------: | -------------- | -------------------: | ------------------: |
| baseline     |     2 |   62.50 ± 12.50 | 50.00, 75.00   |                    — |             1.5 min |
| kfold5       |     2 |   100.00 ± 0.00 | 100.00, 100.00 |               +37.50 |             1.5 min |
| mixup_cutmix |     2 |    81.25 ± 6.25 | 75.00, 87.50   |               +18.75 |             1.5 min |
| tta_hflip    |     2 |   50.00 ± 12.50 | 37.50, 62.50   |               -12.50 |                   — |
"""


def test_rows_hold_each_seeds_accuracy_and_training_time(ablation, solution):
    rows, unfinished = ablation_rows(ablation, solution)
    assert [row.name for row in rows] == ["baseline", "kfold5", "mixup_cutmix", "tta_hflip"]
    assert {row.name: row.accuracies for row in rows} == {
        "baseline": {0: 0.5, 1: 0.75}, "kfold5": {0: 1.0, 1: 1.0}, "mixup_cutmix": {0: 0.75, 1: 0.875},
        "tta_hflip": {0: 0.375, 1: 0.625}}
    assert [(row.mean, row.spread) for row in rows] == [(0.625, 0.125), (1.0, 0.0), (0.8125, 0.0625), (0.5, 0.125)]
    assert [row.train_seconds for row in rows] == [[60, 120], [60, 120], [90, 90], []]  # k-fold: folds summed
    assert unfinished == ["ema_seed0"]


def test_table_is_aligned_with_means_spreads_and_differences(ablation, solution):
    assert markdown_table(ablation_rows(ablation, solution)[0]) == TABLE


def test_cli_prints_and_writes_the_table_and_names_unfinished_runs(ablation, solution, capsys):
    assert ablation_table(["--dir", str(ablation), "--solution", str(solution)]) == 0
    written = (ablation / "ablation.md").read_text()
    assert written.startswith(TABLE + "\nTest accuracy against solution.csv: mean ± half the range over the seeds")
    out, err = capsys.readouterr()
    assert out == written + f"Wrote {ablation / 'ablation.md'}\n"
    assert err == "Not finished, left out: ema_seed0\n"


def test_a_submission_for_other_images_is_named(ablation, solution, capsys):
    submission = ablation / "baseline_seed1" / "submission.csv"
    pd.read_csv(submission).iloc[::-1].to_csv(submission, index=False)
    assert ablation_table(["--dir", str(ablation), "--solution", str(solution)]) == 2
    assert capsys.readouterr().err == (
        f"error: cannot score {submission} against {solution}: {submission} and {solution} do not list the same "
        "image_path values in the same order.\n")


def test_a_folder_without_finished_runs_is_an_error(tmp_path, solution, capsys):
    (tmp_path / "baseline_seed0").mkdir()
    assert ablation_table(["--dir", str(tmp_path), "--solution", str(solution)]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path} has no finished run (a <row>_seed<k> folder with a "
                                       "submission.csv); run scripts/ablation.sh first.\n")


# --- scripts/ablation.sh --------------------------------------------------------------------------------------

ROWS = ["baseline", "label_smoothing", "mixup_cutmix", "ema", "sketch_autoaugment", "vflip", "light_geometry",
        "tta_hflip", "tta_hflip_vflip", "kfold5"]
TRAINED_FROM_SCRATCH = {"model_name_or_path": "convnext_atto", "label_smoothing_factor": 0.0, "mixup_alpha": 0.0,
                        "cutmix_alpha": 0.0, "ema_decay": None, "augment": "sketch", "vflip": 0.0, "tta": [],
                        "rotate_degrees": 15, "translate": 0.15, "scale": 0.2}
# What each row changes from the baseline (and the baseline from nothing), as parsed by run_classification.parse.
CHANGES = {
    "baseline": {},
    "label_smoothing": {"label_smoothing_factor": 0.1},
    "mixup_cutmix": {"mixup_alpha": 0.2, "cutmix_alpha": 1.0, "mixup_prob": 0.5},
    "ema": {"ema_decay": 0.999},
    "sketch_autoaugment": {"augment": "sketch_autoaugment"},
    "vflip": {"vflip": 0.5},
    "light_geometry": {"rotate_degrees": 10, "translate": 0.1, "scale": 0.1},
    "tta_hflip": {"tta": ["hflip"], "do_train": False},
    "tta_hflip_vflip": {"tta": ["hflip", "vflip"], "do_train": False},
    "kfold5": {},
}


def dry_run(out: Path, *flags: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["scripts/ablation.sh", *flags], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DRY_RUN": "1", "OUT": str(out), "PYTHON": sys.executable, **env})


def planned_runs(stdout: str, out: Path) -> dict[str, list[str]]:
    """The planned commands (the lines that are not # comments) by the run folder they write, except the last."""
    commands = [shlex.split(line) for line in stdout.splitlines() if not line.startswith("#")]
    *runs, table = commands
    assert table == [sys.executable, "scripts/ablation_table.py", "--dir", str(out),
                     "--solution", str((REPO / "../shared/data/quickdraw100/solution.csv").resolve())]
    by_folder = {}
    for args in runs:
        folder = Path(args[len(args) - 1 - args[::-1].index("--output_dir") + 1]).relative_to(out).parts[0]
        assert folder not in by_folder
        by_folder[folder] = args
    return by_folder


def parsed(args: list[str]) -> dict:
    """The options the command's run(s) get, as run_classification parses them."""
    if args[1] == "scripts/train_kfold.py":  # it runs run_classification.py PRESET FLAGS --num_folds K --fold k
        args = [sys.executable, "run_classification.py", args[2], *args[4:], "--num_folds", args[3], "--fold", "0"]
    assert args[:2] == [sys.executable, "run_classification.py"]
    model_args, data_args, training_args = parse(args[2:])
    return {**vars(model_args), **vars(data_args), **training_args.to_dict()}


def test_dry_run_plans_every_row_and_seed_with_its_options(tmp_path):
    out = tmp_path / "ablation"
    result = dry_run(out)
    assert result.returncode == 0, result.stderr
    runs = planned_runs(result.stdout, out)
    assert set(runs) == {f"{row}_seed{seed}" for row in ROWS for seed in (0, 1)}
    for folder, args in runs.items():
        row, seed = folder.rsplit("_seed", 1)
        options = parsed(args)
        expected = {**TRAINED_FROM_SCRATCH, "seed": int(seed), "image_size": 64, "precision": "fp32",
                    "do_predict": True, **CHANGES[row]}
        if row.startswith("tta_"):
            expected["model_name_or_path"] = str(out / f"baseline_seed{seed}")
        assert {key: options[key] for key in expected} == expected, folder
        assert (args[1] == "scripts/train_kfold.py" and args[3] == "5") == (row == "kfold5"), folder


def test_finished_runs_are_skipped_and_epochs_and_flags_reach_every_run(tmp_path):
    out = tmp_path / "ablation"
    fake_run(out / "baseline_seed0", 1)
    fake_run(out / "kfold5_seed1" / "run_ensemble", 1)
    result = dry_run(out, "--max_steps", "2", SEEDS="0 1", ROWS="baseline kfold5", EPOCHS="3")
    assert result.returncode == 0, result.stderr
    assert f"# baseline seed 0: {out}/baseline_seed0/submission.csv exists, skipping." in result.stdout.splitlines()
    runs = planned_runs(result.stdout, out)
    assert set(runs) == {"baseline_seed1", "kfold5_seed0"}
    for args in runs.values():
        assert (parsed(args)["num_train_epochs"], parsed(args)["max_steps"]) == (3, 2)


def test_an_unknown_row_stops_before_any_run(tmp_path):
    result = dry_run(tmp_path, ROWS="baseline mixup")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == ("error: unknown row 'mixup' in ROWS; use some of: " + " ".join(ROWS) + "\n")


def test_the_preset_parses_as_the_ablation_baseline():
    model_args, data_args, training_args = parse(["training_args/ablation_quickdraw100.yaml"])
    assert (model_args.model_name_or_path, data_args.data_dir, training_args.label_smoothing_factor,
            training_args.bf16, training_args.fp16) == ("convnext_atto", "../shared/data/quickdraw100", 0.0,
                                                          False, False)


def test_cli_runs_as_a_script(ablation, solution):
    result = run_script("scripts/ablation_table.py", "--dir", str(ablation), "--solution", str(solution))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(TABLE)
