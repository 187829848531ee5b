"""Facts about the machine netsynth runs on."""
import os


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, where the OS has one; it can be fewer than the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
