"""What netsynth sets for the process when imported (netsynth/__init__.py): how its OpenMP threads wait (passively after
a short spin) and what malloc keeps, unless the user says otherwise. Read when the libraries load, so each case is a
fresh interpreter."""
import os
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


# Four blocks of 24 MiB, touched, freed, again: page faults in the later rounds are memory that malloc gave back.
REFAULTS = """import resource, numpy as np, netsynth  # noqa: F401
def round_():
    blocks = [np.ones(3 << 20) for _ in range(4)]
    del blocks
round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    round_()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3)"""


@pytest.mark.skipif(sys.platform != "linux", reason="the allocator setting is glibc's")
def test_freed_memory_stays_in_the_process_unless_the_user_sets_malloc():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    faults = {}
    for case, given in (("netsynth", {}), ("user's", {"MALLOC_TRIM_THRESHOLD_": "131072"})):
        out = subprocess.run([sys.executable, "-c", REFAULTS], env={**env, **given}, capture_output=True, text=True,
                             check=True)
        faults[case] = int(out.stdout.split()[-1])
    # numpy asks for huge pages for large arrays, where the system has them: fewer faults per MiB, same ratio
    assert faults["user's"] > 100 and faults["netsynth"] < faults["user's"] / 20, faults
