"""Pick the fastest correct precision for the device that will train."""

from pathlib import Path

import torch

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with AMX or AVX512-BF16, where bf16 autocast beats fp32 (see the README's benchmark)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return False
    flags = set(cpuinfo.read_text().split())
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def auto_precision() -> str:
    """fp16 with a grad scaler on CUDA, bf16 autocast on CPUs that support it, fp32 otherwise."""
    if torch.cuda.is_available():
        return "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"
