"""How netsynth's OpenMP threads wait (netsynth/__init__.py): passively after a short spin, unless the user says
otherwise. Read by OpenMP when torch loads it, so each case is a fresh interpreter."""
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
