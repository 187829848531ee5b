"""What netsynth sets for the process when imported (netsynth/__init__.py): how its OpenMP threads wait (passively after
a short spin) and what malloc keeps, unless the user says otherwise. Read when the libraries load, so each case is a
fresh interpreter."""
import os
import platform
import subprocess
import sys

import pytest

SHOW = "import os, netsynth; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"


@pytest.mark.parametrize("given, seen", [({}, "PASSIVE 1000"), ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE None"),
                                         ({"GOMP_SPINCOUNT": "50"}, "PASSIVE 50")])
def test_threads_wait_passively_after_a_short_spin_unless_the_user_says_otherwise(given, seen):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", SHOW], env={**env, **given}, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == seen.split()


# Four blocks of 24 MiB, touched, then freed: what stays resident is memory malloc kept for the next allocation
# instead of giving it back (and taking it again as page faults, however large the system's pages).
KEPT = """import os, numpy as np, netsynth  # noqa: F401
def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = resident()
blocks = [np.ones(3 << 20) for _ in range(4)]
del blocks
print((resident() - before) >> 20)"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or sys.platform != "linux", reason="the setting is glibc's")
def test_freed_memory_stays_in_the_process_unless_the_user_sets_malloc():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    kept_mib = {}
    for case, given in (("netsynth", {}), ("user's", {"MALLOC_TRIM_THRESHOLD_": "131072"})):
        out = subprocess.run([sys.executable, "-c", KEPT], env={**env, **given}, capture_output=True, text=True,
                             check=True)
        kept_mib[case] = int(out.stdout.split()[-1])
    assert kept_mib["netsynth"] >= 72 and kept_mib["user's"] <= 24, kept_mib


def test_the_one_flow_sampler_holds_blas_to_one_thread_and_gives_back_the_users_setting():
    from threadpoolctl import threadpool_info, threadpool_limits
    from netsynth.models.numpy_decoding import one_blas_thread

    def blas_threads():
        return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    assert blas_threads()  # NumPy's BLAS is found (else the context would hold nothing)
    with threadpool_limits(limits=3, user_api="blas"):
        with pytest.raises(RuntimeError):
            with one_blas_thread():
                assert set(blas_threads().values()) == {1}
                raise RuntimeError("an error while sampling")
        assert set(blas_threads().values()) == {3}
