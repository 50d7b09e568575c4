"""Killed 3 times with SIGKILL at random steps and rerun each time, a run ends exactly where an uninterrupted one does.

Same global_step, same per-step losses in trainer_state.json's log_history, same final weights (within 1e-6),
on CPU in fp32 with --dataloader_num_workers 0 (docs/resume.md says why and what holds elsewhere).
"""

import json
import os
import random
import subprocess
import time

from conftest import PYTHON, REPO, run_in_this_process, run_script
from safetensors.torch import load_file

STEPS_PER_EPOCH = 5  # 80 training images (no validation split) in batches of 16
EPOCHS = 3
SAVE_STEPS = 2
TOLERANCE = 1e-6


def flags(data_dir, output_dir) -> list[str]:
    """Every source of randomness on: augmentation geometry and flips, mixup/CutMix, drop path, shuffling."""
    return [
        "--data_dir", str(data_dir), "--output_dir", str(output_dir), "--model_name_or_path", "test_convnext",
        "--image_size", "32", "--do_train", "--do_eval", "false", "--do_predict", "false", "--validation_split", "0",
        "--num_train_epochs", str(EPOCHS), "--per_device_train_batch_size", "16", "--learning_rate", "0.003",
        "--eval_strategy", "no", "--save_strategy", "steps", "--save_steps", str(SAVE_STEPS),
        "--logging_strategy", "steps", "--logging_steps", "1", "--rotate_degrees", "10", "--translate", "0.1",
        "--scale", "0.1", "--mixup_alpha", "0.2", "--cutmix_alpha", "1.0", "--drop_path_rate", "0.1", "--precision", "fp32", "--dataloader_num_workers", "0",
        "--seed", "3", "--report_to", "none", "--disable_tqdm", "true", "--remove_unused_columns", "false",
    ]


def checkpoint_steps(output_dir) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in output_dir.glob("checkpoint-*") if p.name.split("-")[1].isdigit())


def run_until_checkpoint_then_kill(command: list[str], output_dir, step: int, delay: float, log) -> None:
    """Start the run, wait for checkpoint-`step` to appear, wait `delay` s more (so the kill lands anywhere:
    mid-save, mid-step), then SIGKILL it."""
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
        try:
            deadline = time.monotonic() + 300
            while step not in checkpoint_steps(output_dir) and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(delay)
            assert process.poll() is None, f"the run ended before the kill at step {step}:\n{log.read_text()[-2000:]}"
        finally:
            process.kill()
            process.wait()


def step_losses(output_dir) -> dict[int, float]:
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


def test_three_kills_at_random_steps_resume_to_exactly_the_uninterrupted_run(tmp_path, quickdraw_mini):
    total_steps = STEPS_PER_EPOCH * EPOCHS
    straight = tmp_path / "straight"  # the reference needs no process of its own: the killed runs are the test
    code, log = run_in_this_process(flags(quickdraw_mini, straight))
    assert code == 0, log[-3000:]

    rng = random.Random(15)  # seeded: the same kill points every run of the test
    kills = sorted(rng.sample(range(SAVE_STEPS, total_steps - SAVE_STEPS + 1, SAVE_STEPS), 3))
    killed = tmp_path / "killed"
    command = [PYTHON, "run_classification.py", *flags(quickdraw_mini, killed)]
    for number, step in enumerate(kills):
        run_until_checkpoint_then_kill(command, killed, step, rng.uniform(0, 0.3), tmp_path / f"kill{number}.log")
        assert not (killed / "model.safetensors").exists()  # killed before the end
    result = run_script("run_classification.py", *flags(quickdraw_mini, killed))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Resuming from" in result.stdout

    state = json.loads((killed / "trainer_state.json").read_text())
    assert state["global_step"] == json.loads((straight / "trainer_state.json").read_text())["global_step"] == total_steps
    expected, got = step_losses(straight), step_losses(killed)
    assert sorted(got) == sorted(expected) == list(range(1, total_steps + 1))  # every step logged once
    assert max(abs(got[s] - expected[s]) for s in expected) <= TOLERANCE, (kills, got, expected)
    final, reference = load_file(killed / "model.safetensors"), load_file(straight / "model.safetensors")
    difference = max((final[name] - reference[name]).abs().max().item() for name in reference)
    print(f"kills after checkpoints {kills}: max weight difference {difference:.3g} at step {state['global_step']}")
    assert difference <= TOLERANCE
