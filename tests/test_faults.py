"""Faults during a run: kill -9, a full disk, an unwritable output_dir, NaN losses. Progress is kept, errors are one line."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PYTHON, REPO, run_in_this_process, run_script, tiny_run_flags
from safetensors.torch import load_file

from sketch_train.checkpoints import incomplete_because
from sketch_train.disk_checks import OutputDirError, ensure_writable

MAX_STEPS = 8  # 4 steps per epoch on quickdraw-mini: 2 epochs


def step_flags(data_dir, output_dir, *extra: str) -> list[str]:
    """Evaluate and checkpoint every 2 steps, keeping 2 checkpoints (plus the best, which Trainer always keeps)."""
    return tiny_run_flags(
        data_dir, output_dir, "--max_steps", str(MAX_STEPS), "--eval_strategy", "steps", "--eval_steps", "2",
        "--save_strategy", "steps", "--save_steps", "2", "--save_total_limit", "2", "--logging_strategy", "steps",
        "--logging_steps", "2", "--do_predict", "false", *extra,
    )


def complete_checkpoints(output_dir: Path) -> list[int]:
    steps = [int(p.name.split("-")[1]) for p in output_dir.glob("checkpoint-*") if p.name.split("-")[1].isdigit()]
    return sorted(s for s in steps if incomplete_because(output_dir / f"checkpoint-{s}", s) is None)


def start_and_kill_after_first_checkpoint(flags: list[str], output_dir: Path, log: Path) -> None:
    with open(log, "w") as out:
        process = subprocess.Popen([PYTHON, "run_classification.py", *flags], cwd=REPO, stdout=out,
                                   stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        try:
            deadline = time.monotonic() + 300
            while not complete_checkpoints(output_dir) and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert process.poll() is None, "the run ended before it could be killed:\n" + log.read_text()[-2000:]
        finally:
            process.kill()  # SIGKILL: no handler, no cleanup, like the OOM killer or a pre-empted job
            process.wait()


def plant_half_written(output_dir: Path, step: int) -> Path:
    """What a kill during Trainer._save_checkpoint leaves: weights written, optimizer.pt cut short, no trainer_state.json."""
    source = output_dir / f"checkpoint-{complete_checkpoints(output_dir)[-1]}"
    target = output_dir / f"checkpoint-{step}"
    shutil.copytree(source, target)
    (target / "trainer_state.json").unlink()
    optimizer = target / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[: optimizer.stat().st_size // 2])
    return target


def eval_steps(state: dict) -> list[int]:
    return [entry["step"] for entry in state["log_history"] if "eval_accuracy" in entry]


def test_kill_9_mid_epoch_then_the_same_command_resumes_and_finishes(tmp_path, quickdraw_mini):
    output_dir = tmp_path / "run"
    flags = step_flags(quickdraw_mini, output_dir)
    start_and_kill_after_first_checkpoint(flags, output_dir, tmp_path / "killed.log")
    resume_from = complete_checkpoints(output_dir)[-1]
    assert resume_from < MAX_STEPS and not (output_dir / "model.safetensors").exists()
    half = output_dir / f"checkpoint-{resume_from + 2}"
    if not half.exists():  # the kill did not land inside a save: make the checkpoint it would have left
        plant_half_written(output_dir, resume_from + 2)

    again = run_script("run_classification.py", *flags)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    log = again.stdout + again.stderr
    assert f"Skipping {half}: " in log and f"moved it to broken-{half.name} " in log
    assert not half.exists() or (half / "trainer_state.json").is_file()  # set aside; the resumed run saved a new one
    assert f"Resuming from {output_dir / f'checkpoint-{resume_from}'}" in log

    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == MAX_STEPS  # as if never interrupted
    assert eval_steps(state) == list(range(2, MAX_STEPS + 1, 2))  # every evaluation, each once: before and after the kill
    evals = [e for e in state["log_history"] if "eval_accuracy" in e]
    best = max(evals, key=lambda e: e["eval_accuracy"])  # max() keeps the first of equals, as Trainer does
    assert state["best_metric"] == best["eval_accuracy"]
    assert state["best_model_checkpoint"] == str(output_dir / f"checkpoint-{best['step']}")
    assert (output_dir / f"checkpoint-{best['step']}").is_dir()  # kept through save_total_limit
    saved = load_file(output_dir / "model.safetensors")
    kept = load_file(output_dir / f"checkpoint-{best['step']}" / "model.safetensors")
    assert all((saved[k] == kept[k]).all() for k in kept)  # the final model is the best one


def mountable_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs: room for one 2.6 MB checkpoint of test_convnext, not two."""
    disk = tmp_path / "disk"
    if not mountable_tmpfs(disk, "4m"):
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN); the resume logic is covered by test_checkpoints")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_disk_full_is_one_line_and_the_cut_off_checkpoint_is_never_resumed(small_disk, quickdraw_mini):
    output_dir = small_disk / "run"
    flags = step_flags(quickdraw_mini, output_dir, "--save_total_limit", "3")
    full = run_script("run_classification.py", *flags)
    assert full.returncode == 1, full.stdout[-3000:] + full.stderr[-3000:]
    assert "Traceback" not in full.stderr
    error = full.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: output_dir {output_dir}: the disk is full (")
    assert error.endswith("Free some space and rerun the same command: it resumes from the last complete "
                          "checkpoint and ignores the one that was cut off.")
    assert complete_checkpoints(output_dir) == [2]
    assert incomplete_because(output_dir / "checkpoint-4", 4) == "it has no trainer_state.json"

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space freed
    again = run_script("run_classification.py", *flags)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    log = again.stdout + again.stderr
    assert f"Skipping {output_dir / 'checkpoint-4'}: it has no trainer_state.json" in log
    assert f"Resuming from {output_dir / 'checkpoint-2'}" in log
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 8 and eval_steps(state) == [2, 4, 6, 8]


def test_unwritable_output_dir_is_one_line_before_any_work(tmp_path, quickdraw_mini, capsys):
    """Under a file: unwritable even for root, whom chmod does not stop (test_output_dir has the read-only mount)."""
    (tmp_path / "a_file").write_text("")
    output_dir = tmp_path / "a_file" / "run"
    code, log = run_in_this_process(tiny_run_flags(quickdraw_mini, output_dir))
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: output_dir {output_dir} is not writable (Not a directory); choose another --output_dir "
        "or fix its permissions."
    )
    assert "Checking train.csv images" not in log  # nothing was started


def test_read_only_output_dir_is_refused_before_any_work(tmp_path):
    read_only = tmp_path / "read_only"
    if not mountable_tmpfs(read_only, "1m"):
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN); the folder-under-a-file case covers the check")
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(read_only)], check=True)
        with pytest.raises(OutputDirError) as raised:
            ensure_writable(read_only / "run")
        assert str(raised.value) == (f"output_dir {read_only / 'run'} is not writable (Read-only file system); "
                                     "choose another --output_dir or fix its permissions.")
    finally:
        subprocess.run(["umount", str(read_only)], check=True)


def test_nan_loss_in_bf16_stops_at_its_step_and_keeps_the_best_finite_model(tmp_path, quickdraw_mini):
    """lr 1e30 after a warm-up step at lr 0: step 1 is finite, then the weights blow up and the loss turns NaN."""
    output_dir = tmp_path / "run"
    code, log = run_in_this_process(tiny_run_flags(
        quickdraw_mini, output_dir, "--precision", "bf16", "--learning_rate", "1e30", "--warmup_steps", "4",
        "--max_steps", "8", "--eval_strategy", "steps", "--eval_steps", "1", "--save_strategy", "steps",
        "--save_steps", "1", "--do_predict", "false"))
    assert code == 0, log[-3000:]
    results = json.loads((output_dir / "all_results.json").read_text())
    stopped = results["train_stopped_at_nonfinite_step"]
    assert results["train_nonfinite_steps"] == 1 and stopped < 8
    assert (f"Step {stopped}: training loss is NaN/inf under bf16; the update was dropped and training stops "
            "(--nan_policy stop)") in log
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == stopped
    evals = {e["step"]: e["eval_loss"] for e in state["log_history"] if "eval_loss" in e}
    finite = [step for step, loss in evals.items() if loss == loss]
    assert finite and len(finite) < len(evals)  # some evaluations were NaN: the fault really happened
    assert state["best_model_checkpoint"] == str(output_dir / f"checkpoint-{state['best_global_step']}")
    assert state["best_global_step"] in finite
    weights = load_file(output_dir / "model.safetensors")
    assert all(t.isfinite().all() for t in weights.values())
    assert results["eval_loss"] == evals[state["best_global_step"]]  # the saved model is that best one
