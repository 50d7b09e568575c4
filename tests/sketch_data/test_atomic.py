"""Result files are replaced atomically: a writer that fails halfway leaves the previous file (or none), never
half a file, and no temporary files behind."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from sketch_data.atomic import (
    TEMP_SUFFIX,
    atomic_save_npy,
    atomic_write,
    atomic_write_text,
    remove_stale_temporaries,
)
from sketch_train.model_card import write_model_card
from sketch_train.report_plots import save as save_figure
from sketch_train.result_files import write_eval_predictions, write_submission
from sketch_train.trainer import SketchTrainer


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


class DiskFull(OSError):
    def __init__(self):
        super().__init__(errno.ENOSPC, "No space left on device")


def test_a_successful_write_lands_whole_with_the_umask_permissions(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_write(target) as file:
        file.write("a,b\n")
        assert not target.exists()  # nothing under the final name until the block ends
    assert target.read_text() == "a,b\n" and snapshot(tmp_path).keys() == {"out.txt"}
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would give, not mkstemp's 0600
    atomic_save_npy(tmp_path / "x.npy", np.arange(3))
    assert np.load(tmp_path / "x.npy").tolist() == [0, 1, 2]


@pytest.mark.parametrize("previous", [None, "the previous result\n"])
def test_a_writer_failing_halfway_leaves_the_previous_file_and_no_litter(tmp_path, previous):
    target = tmp_path / "submission.csv"
    if previous:
        target.write_text(previous)
    with pytest.raises(DiskFull):
        with atomic_write(target) as file:
            file.write("ID,image_path,target\n0,a.JPEG,")  # half a row written, then the disk fills up
            file.flush()
            raise DiskFull()
    assert (target.read_text() if target.exists() else None) == previous
    assert not list(tmp_path.glob(f"*{TEMP_SUFFIX}"))


def test_an_interrupt_mid_write_leaves_neither_the_file_nor_its_temporary(tmp_path):
    """(A SIGKILL runs no cleanup: then a hidden .name.<pid>-<random>.partial stays, never the final name.)"""
    target = tmp_path / "eval_logits.npy"
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target, "wb") as file:
            np.save(file, np.zeros(3))
            raise KeyboardInterrupt
    assert not target.exists() and not list(tmp_path.iterdir())


def _trainer_like(output_dir: Path):
    return SimpleNamespace(is_world_process_zero=lambda: True, args=SimpleNamespace(output_dir=str(output_dir)))


WRITERS = {
    "submission.csv + test_logits.npy": lambda d: write_submission(["a.JPEG", "b.JPEG"], np.eye(2), d),
    "eval_predictions.csv + eval_logits.npy": lambda d: write_eval_predictions(
        ["a.JPEG", "b.JPEG"], np.array([0, 1]), np.eye(2), ["cat", "dog"], d),
    "*_results.json + all_results.json": lambda d: SketchTrainer.save_metrics(_trainer_like(d), "eval", {"eval_accuracy": 0.5}),
    "README.md model card + run_summary.json": lambda d: write_model_card(d, {"hyperparameters": {"seed": 1}}),
    "report pictures": lambda d: save_figure(plt.figure(), d / "curves.png"),
}


@pytest.mark.parametrize("writer", WRITERS.values(), ids=WRITERS.keys())
def test_every_result_writer_keeps_the_previous_files_when_the_disk_fills_mid_write(tmp_path, monkeypatch, writer):
    writer(tmp_path)  # a finished earlier run's files
    (tmp_path / "all_results.json").write_text(json.dumps({"train_loss": 1.0}))
    before = snapshot(tmp_path)

    def fail(fd):
        raise DiskFull()

    monkeypatch.setattr("sketch_data.atomic.os.fsync", fail)  # every byte written, not yet durable nor renamed
    with pytest.raises(DiskFull):
        writer(tmp_path)
    assert snapshot(tmp_path) == before


def test_save_metrics_writes_what_trainer_writes(tmp_path):
    SketchTrainer.save_metrics(_trainer_like(tmp_path), "train", {"train_loss": 1.5, "epoch": 2.0})
    SketchTrainer.save_metrics(_trainer_like(tmp_path), "eval", {"eval_accuracy": 0.75})
    assert json.loads((tmp_path / "train_results.json").read_text()) == {"train_loss": 1.5, "epoch": 2.0}
    assert json.loads((tmp_path / "all_results.json").read_text()) == {
        "train_loss": 1.5, "epoch": 2.0, "eval_accuracy": 0.75}


def test_outputs_read_back_as_written(tmp_path):
    write_submission(["a.JPEG", "b.JPEG"], np.array([[0.0, 1.0], [2.0, 0.0]]), tmp_path)
    assert pd.read_csv(tmp_path / "submission.csv").to_dict("list") == {
        "ID": [0, 1], "image_path": ["a.JPEG", "b.JPEG"], "target": [1, 0]}
    assert atomic_write_text(tmp_path / "t.txt", "é\n").read_bytes() == "é\n".encode()


def test_temporaries_of_killed_writers_are_removed_and_those_of_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a process that has exited
    stale = tmp_path / f".submission.csv.{dead_pid}-0123abcd{TEMP_SUFFIX}"
    live = tmp_path / f".submission.csv.{os.getpid()}-0123abcd{TEMP_SUFFIX}"
    other = tmp_path / "notes.partial"
    for path in (stale, live, other):
        path.write_text("half")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert live.exists() and other.exists() and not stale.exists()
