"""The floating-point precision of training and sampling: float32, or bfloat16 autocast where the chip is fast at it.

bf16 pays only where the hardware has it: GPUs since Ampere, and CPUs with AMX (about 6x the float32 matmul rate);
AVX512-BF16 alone gives 1.5-3x, and a CPU without either emulates bf16 two orders of magnitude slower than
float32. Flags in /proc/cpuinfo do not say what torch's kernels make of them, so `auto` measures: it times a
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
# float32 elementwise work remain): not worth the rounding by default. A Xeon with AVX512-BF16 (and AMX in its
# flags) measured 1.5-1.75x here (its raw bf16 rate varies from run to run) and trained and sampled slower in
# bf16; AMX at full speed reaches about 6x (BENCHMARKS.md).
BF16_MIN_SPEEDUP = 4.0


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
def bf16_speedup(size: int = 512, repeats: int = 8) -> float:
    """bf16 matmul throughput over float32 on this CPU, measured once per process (about 40 ms).

    The two precisions take turns and each keeps its best time: timed one after the other, best of 3, a chip
    that runs bf16 at 1.5-3.5x float32 once measured 5x. Where bf16 is emulated, each of its runs takes a quarter of a
    second, so the measurement stops as soon as bf16 is the slower one."""
    pair = {dtype: (torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype))
            for dtype in (torch.float32, torch.bfloat16)}
    best = {dtype: float("inf") for dtype in pair}
    for i in range(repeats + 1):
        for dtype, (a, b) in pair.items():
            t0 = time.perf_counter()
            a @ b
            if i:  # the first round warms up the kernels
                best[dtype] = min(best[dtype], time.perf_counter() - t0)
        if i and best[torch.bfloat16] > best[torch.float32]:
            break
    return best[torch.float32] / best[torch.bfloat16]


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
