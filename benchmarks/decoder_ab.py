"""A/B of the step decoders (models/decoding.py) of two commits, in one process.

    python benchmarks/decoder_ab.py MODEL_DIR --against REV [--rounds 4] [--calls 60] [--batch 1024]

Whole runs of benchmarks/generation.py on a shared 2-core machine differ by more than most changes to a decoder, so
a change is judged here: the working tree's decoding.py and the one of commit REV (read with `git show`) sample the
same saved llama or mamba model (netsynth.load) in alternating rounds. Each round times one flow per call (`--calls`
calls) and one batch of `--batch` flows with each decoder; medians over the rounds. Also prints the share of a batch's
flows that both decoders draw identically for one seed (float rounding may move a draw that lies on a boundary).
"""
import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import netsynth
from netsynth.models import sequence

parser = argparse.ArgumentParser()
parser.add_argument("model", help="a saved llama or mamba model (a folder written by netsynth train)")
parser.add_argument("--against", required=True, help="the git revision whose decoding.py is the reference")
parser.add_argument("--rounds", type=int, default=4)
parser.add_argument("--calls", type=int, default=60)
parser.add_argument("--batch", type=int, default=1024)
args = parser.parse_args()
root = Path(__file__).resolve().parents[1]


def module_at(revision: str | None):
    """models/decoding.py of `revision` (None: the working tree) as a module of its own."""
    path = root / "src/netsynth/models/decoding.py"
    if revision is not None:
        source = subprocess.run(["git", "show", f"{revision}:src/netsynth/models/decoding.py"], cwd=root,
                                capture_output=True, text=True)
        if source.returncode:
            sys.exit(f"git show {revision}: {source.stderr.strip()}")
        path = Path(tempfile.mkdtemp()) / "decoding.py"
        path.write_text(source.stdout)
    spec = importlib.util.spec_from_file_location(f"decoding_{revision or 'tree'}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


model = netsynth.load(args.model)
decoders = {args.against: module_at(args.against).decoder_for, "working tree": module_at(None).decoder_for}
one, batch = np.array([0]), np.arange(args.batch) % len(model.classes_)


def sample(name: str, codes: np.ndarray, seed: int) -> np.ndarray:
    sequence.decoder_for = decoders[name]
    return sequence.sample_tokens(model.module_, model.codec_, codes, seed=seed, batch_size=args.batch)


def seconds(name: str, codes: np.ndarray, calls: int) -> float:
    t0 = time.perf_counter()
    for seed in range(calls):
        sample(name, codes, seed)
    return (time.perf_counter() - t0) / calls


drawn = [sample(name, batch, seed=7) for name in decoders]  # also the warm-up
print(f"{model.kind}, {model.n_packets_} packets; flows drawn identically by both: "
      f"{(drawn[0] == drawn[1]).all(axis=1).mean():.1%}")
per_call = {name: [] for name in decoders}
rate = {name: [] for name in decoders}
for _ in range(args.rounds):
    for name in decoders:
        per_call[name].append(1000 * seconds(name, one, args.calls))
        rate[name].append(args.batch / seconds(name, batch, 2))
for name in decoders:
    print(f"{name:14s} one flow per call {np.median(per_call[name]):6.2f} ms (rounds {np.round(per_call[name], 2)}), "
          f"batch {args.batch} {np.median(rate[name]):6.0f} flows/s (rounds {np.round(rate[name])})")
ref, new = args.against, "working tree"
print(f"working tree / {ref}: one flow per call {np.median(per_call[ref]) / np.median(per_call[new]):.2f}x faster, "
      f"batch {np.median(rate[new]) / np.median(rate[ref]):.2f}x")
