"""Workers the project starts die with their parent, even on SIGKILL, and killed cache builds leave no litter."""

import fcntl
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import datasets
from conftest import PYTHON, REPO, tiny_run_flags

from sketch_data.cache import LOCK_FILE, building_in


def children(pid: int) -> set[int]:
    """The live child processes of `pid` (Linux /proc)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(child) for child in (task / "children").read_text().split()}
        except FileNotFoundError:
            pass
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"  # zombies are dead
    except FileNotFoundError:
        return False


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kill_and_check_orphans(process: subprocess.Popen, workers: set[int], within: float = 2.0) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + within
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in workers if alive(pid)]
    for pid in left:  # do not leave them running whatever the outcome
        os.kill(pid, signal.SIGKILL)
    assert not left, f"worker(s) {left} outlived their killed parent"


# A cache build of 400 images with 2 processes (the threshold lowered from 1000 images), 2 batches each; with
# "hang", the second batch of each never ends, so the build is killed mid-map, its first batch written.
CACHE_BUILD = textwrap.dedent("""
    import sys, time
    import datasets
    import sketch_data.cache as cache
    from pathlib import Path
    from sketch_train.arguments import ModelArguments
    from sketch_train.model import build_model
    cache.MIN_IMAGES_PER_PROCESS = 1
    resize_batch, calls = cache._resize_batch, []
    def slow_second_batch(batch, resize):
        calls.append(1)
        if len(calls) > 1 and sys.argv[3] == "hang":
            time.sleep(600)
        return resize_batch(batch, resize)
    cache._resize_batch = slow_second_batch
    processor = build_model(ModelArguments(model_name_or_path="test_convnext", image_size=32), ["a", "b"])[1]
    files = sorted(str(p) for p in Path(sys.argv[1], "train").rglob("*.*"))[:80] * 5
    cache.preresized(files, cache.eval_resize(processor), sys.argv[2])
    print("built", flush=True)
""")


def test_killed_cache_build_leaves_no_orphan_workers_and_the_next_build_removes_its_temporaries(
    quickdraw_mini, tmp_path
):
    cache = tmp_path / "cache"
    script = tmp_path / "build.py"
    script.write_text(CACHE_BUILD)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([PYTHON, str(script), str(quickdraw_mini), str(cache), "hang"], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # both workers wrote their first batch to their temporary Arrow files and hang in the second
        wait_for(lambda: len(list(cache.glob("tmp*"))) >= 2, 120, "the workers' temporary files")
        workers = children(process.pid)
        assert len(workers) == 3  # 2 pool workers and datasets' Manager process
    finally:
        if process.poll() is None:
            kill_and_check_orphans(process, workers if "workers" in locals() else set())
    assert len(list(cache.glob("tmp*"))) >= 2 and not list(cache.glob("*.arrow"))  # the litter a kill leaves

    again = subprocess.run([PYTHON, str(script), str(quickdraw_mini), str(cache), "run"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "built" in again.stdout, again.stderr[-3000:]
    assert not list(cache.glob("tmp*"))
    assert len(list(cache.glob("*.arrow"))) == 2  # one per process


def test_temporaries_of_a_build_still_running_are_left_alone(tmp_path):
    (tmp_path / LOCK_FILE).touch()
    in_use = tmp_path / "tmpab12_xyz"
    in_use.write_bytes(b"being written")
    with open(tmp_path / LOCK_FILE) as other_build:  # another run's shared lock (a separate open file: flock conflicts)
        fcntl.flock(other_build, fcntl.LOCK_SH)
        with building_in(tmp_path):
            pass
        assert in_use.exists()
    with building_in(tmp_path):  # no build running any more: an orphan
        pass
    assert not in_use.exists()


def test_killed_training_leaves_no_orphan_data_loading_workers(quickdraw_mini, tmp_path):
    """PyTorch's own check would end idle workers only within 5 s (MP_STATUS_CHECK_INTERVAL); these go at once."""
    flags = tiny_run_flags(quickdraw_mini, tmp_path / "run", "--dataloader_num_workers", "2",
                           "--dataloader_persistent_workers", "true", "--num_train_epochs", "50", "--do_predict", "false")
    process = subprocess.Popen([PYTHON, "run_classification.py", *flags], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    workers = set()
    try:
        workers = wait_for(lambda: len(children(process.pid)) >= 2 and children(process.pid), 120, "2 workers")
        time.sleep(0.5)  # past their worker_init_fn
    finally:
        kill_and_check_orphans(process, workers, within=1.5)


def test_datasets_keeps_writing_through_temporaries():
    """What the clean-up relies on: datasets.map names its in-progress files as tempfile does."""
    source = Path(datasets.arrow_dataset.__file__).read_text()
    assert 'tempfile.NamedTemporaryFile("wb", dir=cache_dir, delete=False)' in source
