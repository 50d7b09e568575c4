"""Machine defaults: the precision, the data-loading workers and the allocator that suit the hardware a run gets;
and leaving the process group of a multi-process launch when the process is done.

Each default is what `--precision auto`, `--dataloader_num_workers -1` and `--keep_freed_memory` (the defaults)
choose; the figures behind the choices are in docs/speed.md.
"""

import ctypes
import ctypes.util
import logging
import os
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


# ---- precision ----------------------------------------------------------------------------------------------------
# AMX tiles run bf16 matmuls and convolutions several times faster than fp32. AVX512-BF16 alone does not:
# on a 2-core AVX512-BF16 Xeon without AMX, a 4096^2 bf16 matmul ran at half the fp32 speed, and
# convnext_atto/convnext_tiny trained 20-40% slower with bf16 autocast than in fp32 (docs/speed.md).
BF16_CPU_FLAGS = ("amx_bf16",)


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with AMX-BF16 (Sapphire Rapids and later), where bf16 autocast beats fp32."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return False
    flags = set(cpuinfo.read_text().split())
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def auto_precision() -> str:
    """fp16 with a grad scaler on CUDA, bf16 autocast on CPUs with AMX, fp32 otherwise."""
    if torch.cuda.is_available():
        return "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def precision_name(args) -> str:
    """What a TrainingArguments' fp16/bf16 flags train in: fp16, bf16 or fp32."""
    return "fp16" if args.fp16 else "bf16" if args.bf16 else "fp32"


# ---- data-loading workers -----------------------------------------------------------------------------------------
AUTO_WORKERS = -1  # the --dataloader_num_workers value that means "pick from the machine"
MAX_GPU_WORKERS = 8  # beyond this, extra workers only cost memory for 128-448 px images


def auto_num_workers(uses_gpu: bool) -> int:
    """Workers per training process, from the cores this process may use and the processes sharing the node.

    On a GPU the model step runs elsewhere, so every core but the one feeding the GPU decodes images.
    On a CPU the training step itself needs every core, and a worker process preempting one of its threads
    stalls the others at their next synchronisation: on 2 cores, loading pre-resized images in the training
    process ran faster than one worker beside it (docs/speed.md). So one worker per 4 cores, none below 4.
    """
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # set by torchrun and accelerate launch
    cores = max(1, len(os.sched_getaffinity(0)) // processes)
    if uses_gpu:
        return max(1, min(MAX_GPU_WORKERS, cores - 1))
    return cores // 4


# ---- allocator ----------------------------------------------------------------------------------------------------
# Keep a CPU training process's freed memory for its next step instead of giving it back to the OS (glibc).
# A training step allocates and frees the same large activation tensors every time. glibc serves blocks over
# its mmap threshold (at most 32 MiB) with fresh mmaps and returns freed heap tops to the OS, so each step
# faults every 4 KiB page of those tensors in again, and the kernel zeroes each one. On the 2-core benchmark
# machine that was 13 M page faults in 10 convnext_tiny@224 steps (1.4 M with this setting), and a plain training
# loop ran 23% faster without them, 6.2 -> 7.6 img/s (docs/speed.md). What jemalloc or tcmalloc would do
# through LD_PRELOAD, done in-process with mallopt.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4  # mallopt parameters, from glibc's malloc.h
KEEP_FREED_MEMORY = {
    M_MMAP_MAX: 0,  # large blocks come from the heap, where a freed one is reused by the next step
    M_TRIM_THRESHOLD: 2**31 - 1,  # give the heap's free top back only beyond 2 GiB
    M_TOP_PAD: 64 << 20,  # grow the heap 64 MiB at a time, not one allocation at a time
}


def keep_freed_memory() -> bool:
    """Set glibc's allocator to reuse freed memory in this process (and processes it forks); False elsewhere.

    The price is some fragmentation: peak RSS of 8 convnext_tiny@224 steps rose from 4.9 to 5.3 GB (+9%).
    """
    libc_name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(libc_name).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl, Windows): nothing to tune
        logger.debug("No glibc mallopt here; the allocator keeps its defaults.")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(parameter, value) == 1 for parameter, value in KEEP_FREED_MEMORY.items())


# ---- processes ----------------------------------------------------------------------------------------------------
def leave_process_group() -> None:
    """Leave the distributed process group, if this process joined one: exiting with gloo still up aborts it.

    Once per process, at its end: a second run in the same process (the next fold) needs the group the first set up.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
