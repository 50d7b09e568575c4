"""Checks on output_dir: writable before any training time is spent, and full when a write fails."""

import errno
import shutil
import tempfile
from pathlib import Path


class OutputDirError(OSError):
    """output_dir cannot hold the run."""


def ensure_writable(output_dir: str | Path) -> None:
    folder = Path(output_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise OutputDirError(
            f"output_dir {folder} is not writable ({error.strerror or error}); choose another --output_dir "
            "or fix its permissions."
        ) from error


# A write that fails with less than this free was cut off by a full disk: torch.save and safetensors report
# ENOSPC as RuntimeError/SafetensorError without an errno, so free space is the reliable sign.
LOW_SPACE_BYTES = 64 * 2**20


def disk_full_message(error: BaseException, output_dir: str | Path) -> str | None:
    """One line for the user if `error` came from the disk under `output_dir` filling up, else None."""
    folder = Path(output_dir)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    chain = [error, error.__cause__, error.__context__]
    if free >= LOW_SPACE_BYTES and not any(getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) for e in chain):
        return None
    detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return (
        f"output_dir {output_dir}: the disk is full ({free / 2**20:.1f} MiB free) and the run stopped while writing "
        f"({type(error).__name__}: {detail}). Free some space and rerun the same command: it resumes from the last "
        "complete checkpoint and ignores the one that was cut off."
    )
