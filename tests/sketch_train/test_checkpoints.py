"""Resuming picks the newest checkpoint Trainer finished writing; cut-off ones are ignored, deleted and logged."""

import json
import logging

from sketch_train.checkpoints import last_complete_checkpoint


def plant(output_dir, step: int, state: str | None = "complete", weights: bool = True):
    folder = output_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    if weights:
        (folder / "model.safetensors").write_bytes(b"\0" * 64)
    if state == "complete":
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    elif state == "cut off":
        (folder / "trainer_state.json").write_text('{"global_step": ' + str(step) + ', "log_hist')
    elif state is not None:  # a state file from another step, e.g. copied by hand
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": int(state)}))
    return folder


def test_incomplete_checkpoints_are_skipped_deleted_and_logged(tmp_path, caplog):
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
    assert all(folder.exists() for folder in unrelated) and (tmp_path / "checkpoint-3").exists()
    reasons = {
        100: "it has no model weights", 80: "its trainer_state.json is for step 60",
        60: "its trainer_state.json is cut off", 40: "it has no trainer_state.json",
    }
    for step, reason in reasons.items():
        assert (f"Ignoring and deleting {tmp_path / f'checkpoint-{step}'}: {reason}, so it was cut off while being "
                "written (killed or out of disk space); resuming from an earlier checkpoint instead.") in caplog.text


def test_no_checkpoint_means_a_fresh_start(tmp_path):
    assert last_complete_checkpoint(tmp_path / "not-yet-created") is None
    assert last_complete_checkpoint(tmp_path) is None
    plant(tmp_path, 5, state=None)
    assert last_complete_checkpoint(tmp_path) is None
    assert not (tmp_path / "checkpoint-5").exists()
