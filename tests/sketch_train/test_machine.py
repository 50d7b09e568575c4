"""sketch_train/machine.py: the precision, data-loading workers and allocator a run gets from its machine, and leaving
the process group."""

import subprocess
import sys

import pytest
import torch

from sketch_train import machine
from sketch_train.machine import auto_num_workers, auto_precision, leave_process_group


@pytest.mark.parametrize(("flags", "cuda", "precision"), [
    ("fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile", False, "bf16"),  # Sapphire Rapids: AMX tiles
    ("fpu sse2 avx512f avx512_bf16", False, "fp32"),  # AVX512-BF16 alone ran bf16 slower than fp32
    ("fpu sse2 avx2", False, "fp32"),
    ("fpu sse2 avx2", True, "fp16"),  # CUDA: fp16 with a grad scaler, whatever the host CPU
])
def test_auto_precision_follows_the_device_and_the_cpus_amx(tmp_path, monkeypatch, flags, cuda, precision):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.setattr(machine, "Path", lambda path: cpuinfo if path == "/proc/cpuinfo" else path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert auto_precision() == precision


def test_without_proc_cpuinfo_a_cpu_trains_in_fp32(tmp_path, monkeypatch):
    monkeypatch.setattr(machine, "Path", lambda path: tmp_path / "missing")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert auto_precision() == "fp32"


@pytest.mark.parametrize(("cores", "processes", "gpu", "workers"), [
    (16, None, True, 8),   # all cores but the one feeding the GPU, at most 8
    (16, "4", True, 3),    # 4 cores per process
    (16, None, False, 4),  # a CPU run keeps 3 of every 4 cores for the training step
    (4, None, False, 1),
    (2, None, False, 0),   # below 4 cores the training process loads: a worker would preempt the step's threads
    (2, "2", True, 1),
])
def test_auto_num_workers_shares_the_cores_of_the_node(monkeypatch, cores, processes, gpu, workers):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)))
    if processes:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", processes)
    else:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert auto_num_workers(uses_gpu=gpu) == workers


# Allocate, touch and free a 64 MiB tensor 20 times; print the minor page faults of the last 10 rounds.
PROGRAM = """
import resource, sys, torch
from sketch_train.machine import keep_freed_memory
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
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_reused_instead_of_faulted_in_every_time():
    kept, with_keep = faults("keep")
    _, without = faults("default")
    assert kept == "True"
    assert without > 5 * PAGES  # glibc maps each 64 MiB block afresh: ~10 x 16,384 page faults
    assert with_keep < PAGES  # one heap, reused: under one block's worth of faults in 10 rounds


def test_leaving_the_process_group_once_it_is_left_or_was_never_joined_does_nothing(tmp_path):
    leave_process_group()  # never joined
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    leave_process_group()
    assert not torch.distributed.is_initialized()
    leave_process_group()
