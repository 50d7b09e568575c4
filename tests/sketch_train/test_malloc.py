"""sketch_train/malloc.py: after keep_freed_memory(), a freed large tensor's pages are reused, not faulted in again."""

import subprocess
import sys

import pytest
from conftest import REPO

# Allocate, touch and free a 64 MiB tensor 20 times; print the minor page faults of the last 10 rounds.
PROGRAM = """
import resource, sys, torch
sys.path.insert(0, {repo!r})
from sketch_train.malloc import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
for _ in range(10):  # the heap grows to its steady size; until then the pages are new either way
    torch.ones(16 << 20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.ones(16 << 20)
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES = (64 << 20) // 4096


def faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROGRAM.format(repo=str(REPO)), mode], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_reused_instead_of_faulted_in_every_time():
    kept, with_keep = faults("keep")
    _, without = faults("default")
    assert kept == "True"
    assert without > 5 * PAGES  # glibc maps each 64 MiB block afresh: ~10 x 16,384 page faults
    assert with_keep < PAGES  # one heap, reused: under one block's worth of faults in 10 rounds
