"""The floating-point precision of training and sampling: float32, or bfloat16 autocast where the chip is fast at it.

bf16 pays only where the hardware has it: GPUs since Ampere, and CPUs with AMX (about 6x the float32 matmul rate);
AVX512-BF16 alone gives about 2x, and a CPU without either emulates bf16 two orders of magnitude slower than
float32. Flags in /proc/cpuinfo do not say what torch's kernels make of them, so `auto` measures: it times one
matmul in each precision and takes bf16 where it is much faster. Weights, gradients, the optimizer, the scan state
of mamba and the logits stay float32; only the layers' matmuls run in bf16.
"""
from __future__ import annotations

import contextlib
import functools
import time

import torch

from netsynth.errors import NetsynthError

PRECISIONS = ("auto", "fp32", "bf16")
# An AVX512-BF16 EPYC's 2x matmul rate gave llama 1.2-1.65x in training but 0.84x in sampling (casts and
# float32 elementwise work remain): not worth the rounding by default. AMX reaches about 6x (BENCHMARKS.md).
BF16_MIN_SPEEDUP = 3.0


def check(choice: str) -> str:
    if choice not in PRECISIONS:
        raise NetsynthError(f"precision must be one of {', '.join(PRECISIONS)}, got {choice!r}")
    return choice


def resolve(choice: str, device: torch.device) -> str:
    """fp32 or bf16 for `choice` (auto, fp32, bf16) on `device`."""
    if check(choice) != "auto":
        return choice
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if bf16_speedup() >= BF16_MIN_SPEEDUP else "fp32"


@functools.cache
def bf16_speedup(size: int = 512, repeats: int = 3) -> float:
    """bf16 matmul throughput over float32 on this CPU, measured once per process (about 10 ms; about a second
    where bf16 is emulated, which is when the answer matters most)."""
    def best_time(dtype):
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        times = []
        for _ in range(repeats + 1):  # the first call warms up the kernel
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        return min(times[1:])
    return best_time(torch.float32) / best_time(torch.bfloat16)


def describe(used: str, choice: str, device: torch.device) -> str:
    """One line for the logs: the precision `used` for `choice` and, for auto on a CPU, what was measured."""
    if choice != "auto":
        return f"precision {used}"
    if device.type == "cuda":
        return f"precision {used} (auto)"
    return f"precision {used} (auto; bf16 matmuls run {bf16_speedup():.1f}x as fast as float32 on this CPU)"


def autocast(precision: str, device: torch.device):
    """bf16 autocast for `precision` bf16 (resolved), nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
