"""Facts about the machine netsynth runs on."""
import os
import platform


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, where the OS has one; it can be fewer than the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what the platform module knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# glibc's malloc gives blocks above its mmap threshold back to the system when they are freed, and trims the heap
# once the free memory at its top passes twice that threshold. A sampling run allocates tens of MB per step and
# per batch (logits [B, V], the decoders' caches): at batch 1,024 freed memory went back and came again as page
# faults, 10-26 thousand per call of llama's sampler and up to 41 ms of a 154 ms call in the kernel. Kept in the
# process instead, 4,096 flows in batches of 1,024 sampled 1.07x faster (benchmarks/allocator.py, BENCHMARKS.md).
# glibc reads the user's own MALLOC_* settings at startup; those win.
_MALLOPT = {"MALLOC_MMAP_THRESHOLD_": (-3, 32 << 20), "MALLOC_TRIM_THRESHOLD_": (-1, 1 << 30)}  # M_*: glibc's malloc.h


def keep_freed_memory() -> bool:
    """Have glibc serve blocks of up to 32 MiB from its heap and keep up to 1 GiB of freed memory there. False where
    this is not glibc, or where the user set malloc's thresholds (MALLOC_* or GLIBC_TUNABLES)."""
    if not platform.libc_ver()[0] == "glibc" or "GLIBC_TUNABLES" in os.environ \
            or any(name in os.environ for name in _MALLOPT):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return all(libc.mallopt(option, value) == 1 for option, value in _MALLOPT.values())
