"""Two trainings side by side: each process's speed beside the same training alone, by OpenMP wait policy.

    python benchmarks/concurrency.py [--train train.parquet]

One llama epoch on the IoT Sentinel training split (or --train), in fresh processes: alone, then two at once,
with OMP_WAIT_POLICY=ACTIVE (spinning threads, OpenMP's usual behaviour), PASSIVE (threads sleep at once), and
PASSIVE with GOMP_SPINCOUNT=1000 (a short spin before sleeping: netsynth's default).
"""
import argparse
import os
import subprocess
import sys
import tempfile

EPOCH = """
import sys, time
import netsynth
from netsynth import FlowSet
train = FlowSet.read(sys.argv[1])
t0 = time.perf_counter()
netsynth.create("llama").fit(train, epochs=1, patience=9)
print(time.perf_counter() - t0)
"""

parser = argparse.ArgumentParser()
parser.add_argument("--train")
args = parser.parse_args()
with tempfile.TemporaryDirectory() as folder:
    path = args.train
    if path is None:
        from common import iot_train
        path = iot_train().write(os.path.join(folder, "train.parquet"))

    def run(policy: dict, n: int) -> list[float]:
        env = {**{k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}, **policy}
        procs = [subprocess.Popen([sys.executable, "-c", EPOCH, str(path)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True) for _ in range(n)]
        return [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]

    print(f"{os.cpu_count()} CPUs; one llama epoch (s)")
    for policy in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"OMP_WAIT_POLICY": "PASSIVE"},
                   {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "1000"}):
        alone = run(policy, 1)[0]
        pair = run(policy, 2)
        print(f"{' '.join(policy.values()):13s} alone {alone:6.1f}   two at once {pair[0]:6.1f} {pair[1]:6.1f}   "
              f"speed of each beside alone: {alone / max(pair):.2f}")
