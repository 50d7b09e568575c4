"""output_dir checks: unwritable before training, a full disk recognised after a failed write."""

import errno
import shutil
from collections import namedtuple

import pytest

from sketch_train.disk_checks import (
    LOW_SPACE_BYTES,
    OutputDirError,
    disk_full_message,
    ensure_writable,
)

Usage = namedtuple("Usage", "total used free")


def test_missing_folders_are_created(tmp_path):
    ensure_writable(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir() and not list((tmp_path / "a" / "b").iterdir())  # no probe file left


def test_folder_under_a_file_is_not_writable(tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OutputDirError) as raised:
        ensure_writable(tmp_path / "a_file" / "run")
    assert str(raised.value) == (f"output_dir {tmp_path / 'a_file' / 'run'} is not writable (Not a directory); "
                                 "choose another --output_dir or fix its permissions.")


def test_errno_enospc_anywhere_in_the_chain_is_a_full_disk(tmp_path):
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as cause:
            raise RuntimeError("file write failed") from cause
    except RuntimeError as error:
        message = disk_full_message(error, tmp_path / "not-yet" / "run")
    assert message.startswith(f"output_dir {tmp_path / 'not-yet' / 'run'}: the disk is full (")
    assert "MiB free) and the run stopped while writing (RuntimeError: file write failed). Free some space" in message


def test_a_failed_write_with_no_space_left_is_a_full_disk(tmp_path, monkeypatch):
    """torch.save reports ENOSPC as a RuntimeError without errno: free space is the sign."""
    error = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 708352 vs 708240")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(4 * 2**20, 4 * 2**20 - 1024, 1024))
    assert disk_full_message(error, tmp_path) == (
        f"output_dir {tmp_path}: the disk is full (0.0 MiB free) and the run stopped while writing (RuntimeError: "
        "[enforce fail at inline_container.cc:672] . unexpected pos 708352 vs 708240). Free some space and rerun "
        "the same command: it resumes from the last complete checkpoint and ignores the one that was cut off."
    )
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(2**40, 0, LOW_SPACE_BYTES))
    assert disk_full_message(error, tmp_path) is None  # a bug with space to spare keeps its traceback
