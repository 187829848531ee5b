"""The floating-point precision of training and sampling: float32, or bfloat16 autocast where the chip is fast at it.

bf16 pays only where the hardware has it: GPUs since Ampere, and CPUs with AMX (about 6x the float32 matmul rate);
AVX512-BF16 alone gave 1.5-4.2x on the chips measured here, and a CPU without either emulates bf16 two orders of
magnitude slower than float32. Flags in /proc/cpuinfo do not say what torch's kernels make of them, so `auto`
measures: it times a matmul in each precision, once per machine (bf16_speedup), and takes bf16 where it is much
faster. Weights, gradients, the optimizer, the scan state of mamba and the logits stay float32; only the layers'
matmuls run in bf16.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from pathlib import Path

import torch

from netsynth.errors import NetsynthError
from netsynth.fileio import atomic_path
from netsynth.machine import cpu_name

PRECISIONS = ("auto", "fp32", "bf16")
# Between the chips measured (BENCHMARKS.md): a Xeon with AVX512-BF16 (and AMX in its flags) measured 1.5-1.75x in
# six runs and trained and sampled slower in bf16; an EPYC with AVX512-BF16 measured 3.8-4.2x in eleven and trained
# llama 1.59x and sampled batches 1.45x faster in bf16; AMX at full speed reaches about 6x. The threshold was 4x,
# inside the EPYC's spread, so that such a machine chose by the luck of its first measurement.
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


def cache_file() -> Path:
    """Where measurements of the machine are kept: $NETSYNTH_CACHE_DIR, else netsynth's folder of the user's cache."""
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("NETSYNTH_CACHE_DIR") or user_cache / "netsynth") / "precision.json"


@functools.cache
def bf16_speedup() -> float:
    """bf16 matmul throughput over float32 on this CPU, measured by the first process on this machine (CPU, torch
    version and thread count) and kept in cache_file() for every later one; delete the file to measure again.

    Measured per process, the choice was not reproducible: on an EPYC whose ratio lies at 3.8-4.2, around the
    threshold of then (4x), six processes chose bf16 four times and float32 twice, and the same seed gave another
    model and other flows from one run to the next (BENCHMARKS.md). If the file cannot be written, the process keeps its
    own measurement."""
    path, key = cache_file(), machine_key()
    kept = _read_kept(path)
    if isinstance(kept.get(key), dict) and isinstance(kept[key].get("bf16_speedup"), (int, float)):
        return float(kept[key]["bf16_speedup"])
    speedup = measure_bf16_speedup()
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({**kept, key: {"bf16_speedup": speedup, "measured": time.strftime("%Y-%m-%d")}},
                                      indent=1))
    except NetsynthError:
        pass
    return speedup


def machine_key() -> str:
    """What a kept measurement holds for: the CPU, torch, its thread count and the vector instructions its kernels
    may use. ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA lower the latter without changing the CPU: with oneDNN held
    to AVX2, bf16 matmuls on an AVX512-BF16 EPYC ran at 1 GFLOP/s instead of 935 (BENCHMARKS.md, "Medians of three
    epochs, and a CPU without bf16 emulated")."""
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "any"
    return (f"{cpu_name()} | torch {torch.__version__} | {torch.get_num_threads()} threads | "
            f"{torch.backends.cpu.get_cpu_capability()}, oneDNN {onednn}")


def _read_kept(path: Path) -> dict:
    """The measurements kept in `path`; none if it is missing or damaged (then measured and written again)."""
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return kept if isinstance(kept, dict) else {}


def measure_bf16_speedup(size: int = 512, repeats: int = 8) -> float:
    """bf16 matmul throughput over float32 on this CPU (about 40 ms).

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
    return (f"precision {used} (auto; bf16 matmuls run {bf16_speedup():.1f}x as fast as float32 on this CPU, "
            f"as measured once and kept in {cache_file()})")


def autocast(precision: str, device: torch.device):
    """bf16 autocast for `precision` bf16 (resolved), nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
