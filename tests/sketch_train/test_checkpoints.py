"""Resuming picks the newest checkpoint that loads; cut-off ones are set aside (never deleted) and logged."""

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers.trainer_utils import get_last_checkpoint, sort_checkpoints

from sketch_train.checkpoints import _unreadable_because, incomplete_because, last_complete_checkpoint


def plant(output_dir, step: int, state: str | None = "complete", weights: bool = True):
    folder = output_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    if weights:
        save_file({"weight": torch.zeros(2)}, folder / "model.safetensors")
    if state == "complete":
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    elif state == "cut off":
        (folder / "trainer_state.json").write_text('{"global_step": ' + str(step) + ', "log_hist')
    elif state is not None:  # a state file from another step, e.g. copied by hand
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": int(state)}))
    return folder


def test_incomplete_checkpoints_are_skipped_set_aside_and_logged(tmp_path, caplog):
    good = plant(tmp_path, 20)
    plant(tmp_path, 3)  # step 3 < 20: numeric order, not text order, decides the newest
    cut = [plant(tmp_path, 40, state=None), plant(tmp_path, 60, state="cut off"), plant(tmp_path, 80, state="60"),
           plant(tmp_path, 100, weights=False)]
    unrelated = [tmp_path / "checkpoint-120.tmp", tmp_path / "runs"]
    for folder in unrelated:
        folder.mkdir()
    with caplog.at_level(logging.WARNING, logger="sketch_train"):
        assert last_complete_checkpoint(tmp_path) == str(good)
    assert not any(folder.exists() for folder in cut)
    assert all((tmp_path / f"broken-{folder.name}").is_dir() for folder in cut)  # kept for the user, renamed
    assert all(folder.exists() for folder in unrelated) and (tmp_path / "checkpoint-3").exists()
    reasons = {
        100: "it has no model weights", 80: "its trainer_state.json is for step 60",
        60: "its trainer_state.json is cut off", 40: "it has no trainer_state.json",
    }
    for step, reason in reasons.items():
        assert (f"Skipping {tmp_path / f'checkpoint-{step}'}: {reason}, so it was cut off while being written "
                f"(killed, power cut or out of disk space); moved it to broken-checkpoint-{step} (delete it when you "
                "no longer need it) and resuming from an earlier checkpoint instead.") in caplog.text
    assert len(caplog.records) == len(reasons)  # one line per checkpoint set aside
    # the renamed folders are invisible to Trainer's own checkpoint search and rotation
    assert get_last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-20")
    assert "broken" not in str(sort_checkpoints(str(tmp_path)))


def test_a_checkpoint_broken_twice_at_the_same_step_is_set_aside_under_a_new_name(tmp_path):
    plant(tmp_path, 5, state=None)
    last_complete_checkpoint(tmp_path)
    plant(tmp_path, 5, state="cut off")
    last_complete_checkpoint(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken-checkpoint-5", "broken-checkpoint-5.2"]


def test_no_checkpoint_means_a_fresh_start(tmp_path, caplog):
    assert last_complete_checkpoint(tmp_path / "not-yet-created") is None
    assert last_complete_checkpoint(tmp_path) is None
    assert not caplog.records
    plant(tmp_path, 5, state=None)
    with caplog.at_level(logging.WARNING, logger="sketch_train"):
        assert last_complete_checkpoint(tmp_path) is None
    assert not (tmp_path / "checkpoint-5").exists()
    assert f"No complete checkpoint left in {tmp_path}: training starts from scratch." in caplog.text


@pytest.fixture(scope="module")
def real_checkpoint(tiny_run) -> Path:
    """A checkpoint Trainer wrote (tiny_run saves one per epoch): every file a resume reads."""
    return sorted(tiny_run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[0]


CHECKPOINT_FILES = ["config.json", "model.safetensors", "optimizer.pt", "rng_state.pth", "scheduler.pt",
                    "trainer_state.json", "training_args.bin"]


def test_the_real_checkpoint_has_the_files_the_cut_tests_cover(real_checkpoint):
    assert sorted(p.name for p in real_checkpoint.iterdir()) == CHECKPOINT_FILES
    step = int(real_checkpoint.name.split("-")[1])
    assert incomplete_because(real_checkpoint, step) is None


@pytest.mark.parametrize("cut", ["zero bytes", "half"])
@pytest.mark.parametrize("name", CHECKPOINT_FILES)
def test_any_file_of_the_newest_checkpoint_cut_short_falls_back_to_the_previous_one(
    real_checkpoint, tmp_path, caplog, name, cut
):
    """A power cut: the newest checkpoint has every file, one of them short; the previous one is resumed."""
    step = int(real_checkpoint.name.split("-")[1])
    previous = shutil.copytree(real_checkpoint, tmp_path / f"checkpoint-{step}")
    newest = shutil.copytree(real_checkpoint, tmp_path / f"checkpoint-{step + 10}")
    state = json.loads((newest / "trainer_state.json").read_text())
    (newest / "trainer_state.json").write_text(json.dumps({**state, "global_step": step + 10}))
    file = newest / name
    data = file.read_bytes()
    file.write_bytes(b"" if cut == "zero bytes" else data[: len(data) // 2])

    with caplog.at_level(logging.WARNING, logger="sketch_train"):
        assert last_complete_checkpoint(tmp_path) == str(previous)
    assert len(caplog.records) == 1 and f"Skipping {newest}: " in caplog.text
    assert (name in caplog.text) or (name == "trainer_state.json" and "trainer_state.json is cut off" in caplog.text)
    kept = tmp_path / f"broken-checkpoint-{step + 10}" / name  # set aside as it was, not deleted
    assert kept.stat().st_size == (0 if cut == "zero bytes" else len(data) // 2)


def test_a_file_removed_while_the_checkpoint_is_read_is_reported_missing_not_raised(tmp_path):
    """A watcher (or a second process) can list a file that Trainer's rotation removes before it is read."""
    assert _unreadable_because(tmp_path / "scheduler.pt") == "is missing"
