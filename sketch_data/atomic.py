"""Write result files so that a reader sees the previous file or the finished new one, never half of one.

A kill -9, a power cut or a full disk in the middle of `open(path, "w")` leaves a short file under the final
name, which later tools (scripts/ensemble.py, the Hub push) would read as a finished result. Here the bytes go
to a temporary name in the same folder (so the rename cannot cross file systems), are flushed and fsynced,
and only then renamed over the target with `os.replace`, which POSIX makes atomic; the folder is fsynced too,
so that the rename itself survives a power cut.
"""

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

TEMP_SUFFIX = ".partial"
TEMPORARY_NAME = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$")


def temporary_name(path: str | Path) -> Path:
    """A hidden, unique name beside `path`: `.submission.csv.<pid>-<random>.partial`."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}")


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """`with atomic_write("submission.csv") as f: f.write(...)`: `path` appears only once the block succeeds.

    On any exception (or KeyboardInterrupt) the temporary file is removed and `path` keeps its previous content.
    """
    if not mode.startswith("w"):
        raise ValueError(f"atomic_write writes whole files; mode {mode!r} must start with 'w'.")
    path = Path(path)
    temporary = temporary_name(path)
    try:
        # O_EXCL: never follow or reuse a file planted under the temporary name; 0o666 lets the umask decide, as open() does
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with open(fd, mode, **open_kwargs) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_folder(path.parent)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    with atomic_write(path, "w", encoding=encoding, newline="") as file:
        file.write(text)
    return Path(path)


def atomic_write_csv(frame: "pd.DataFrame", path: str | Path) -> Path:
    """`frame.to_csv(path, index=False)`, atomically."""
    with atomic_write(path, "w", newline="", encoding="utf-8") as file:
        frame.to_csv(file, index=False)
    return Path(path)


def atomic_save_npy(path: str | Path, array: np.ndarray) -> Path:
    with atomic_write(path, "wb") as file:
        np.save(file, array)
    return Path(path)


def fsync_folder(folder: str | Path) -> None:
    """Make a rename in `folder` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporaries that killed writers left in `folder`; those of live processes stay (their name holds
    the writer's pid). Returns what was removed."""
    removed = []
    for path in Path(folder).iterdir():
        match = TEMPORARY_NAME.match(path.name)
        if match and not _alive(int(match.group(1))) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
