"""Pick the fastest correct precision for the device that will train."""

from pathlib import Path

import torch

# AMX tiles run bf16 matmuls and convolutions several times faster than fp32. AVX512-BF16 alone does not:
# on a 2-core AVX512-BF16 Xeon without AMX, a 4096^2 bf16 matmul ran at half the fp32 speed, and
# convnext_atto/convnext_tiny trained 20-40% slower with bf16 autocast than in fp32 (README, "Speed").
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
