"""What netsynth's malloc setting (machine.keep_freed_memory) does to sampling, beside glibc's default.

    python benchmarks/allocator.py MODEL_DIR [--rounds 4] [--flows 4096] [--precision fp32|bf16]

A saved llama or mamba samples `--flows` flows in batches of 1,024 (as `netsynth generate` does), five times per
round, in a fresh process per round and setting, the two settings alternating: netsynth's (blocks of up to 32 MiB
from the heap, freed memory kept) and glibc's default (GLIBC_TUNABLES set to a check that changes nothing, so that
netsynth leaves malloc as it is). Prints
flows/s, minor page faults and kernel time per call, medians over the rounds.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

CHILD = """
import json, resource, sys, time
import numpy as np
import netsynth, torch
from netsynth import precision
from netsynth.models.sequence import sample_tokens
model = netsynth.load(sys.argv[1])
codes = np.arange(int(sys.argv[2])) % len(model.classes_)
def call(seed):
    with precision.autocast(sys.argv[3], torch.device("cpu")):
        sample_tokens(model.module_, model.codec_, codes, seed=seed, batch_size=1024)
call(0)
start, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for seed in range(1, 6):
    call(seed)
seconds, end = (time.perf_counter() - t0) / 5, resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"rate": len(codes) / seconds, "faults": (end.ru_minflt - start.ru_minflt) / 5,
                  "kernel_ms": 1000 * (end.ru_stime - start.ru_stime) / 5}))
"""

parser = argparse.ArgumentParser()
parser.add_argument("model", help="a saved llama or mamba model (a folder written by netsynth train)")
parser.add_argument("--rounds", type=int, default=4)
parser.add_argument("--flows", type=int, default=4096)
parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
args = parser.parse_args()
base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
settings = {"netsynth (heap, kept)": base, "glibc default": {**base, "GLIBC_TUNABLES": "glibc.malloc.check=0"}}
seen = {name: [] for name in settings}
for _ in range(args.rounds):
    for name, env in settings.items():
        out = subprocess.run([sys.executable, "-c", CHILD, args.model, str(args.flows), args.precision], env=env,
                             capture_output=True, text=True, check=True)
        seen[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
for name, runs in seen.items():
    median = {key: float(np.median([run[key] for run in runs])) for key in runs[0]}
    rates = ", ".join(f"{run['rate']:.0f}" for run in runs)
    print(f"{name:22s} {median['rate']:7.0f} flows/s ({rates}), "
          f"{median['faults']:7.0f} page faults and {median['kernel_ms']:5.1f} ms in the kernel per call")
ours, default = (np.median([run["rate"] for run in seen[name]]) for name in settings)
print(f"netsynth / glibc default: {ours / default:.2f}x")
