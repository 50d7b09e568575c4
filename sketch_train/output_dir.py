"""Checks on output_dir made before any training time is spent."""

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
