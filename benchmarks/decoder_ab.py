"""A/B of the sampler (models/sequence.py with the step decoders of models/decoding.py and models/numpy_decoding.py)
of two commits, in one process.

    python benchmarks/decoder_ab.py MODEL_DIR --against REV [--rounds 4] [--calls 60] [--batch 1024] [--precision fp32|bf16]

Whole runs of benchmarks/generation.py on a shared 2-core machine differ by more than most changes to a sampler, so
a change is judged here: the working tree's sampler and the one of commit REV (its files read with `git show`)
sample the same saved llama or mamba model (netsynth.load) in alternating rounds. Each round times one flow per call
(`--calls` calls) and one batch of `--batch` flows with each sampler; medians over the rounds. Also prints the share of
flows that both samplers draw identically, of a batch for one seed and of one flow per call for `--calls` seeds (float
rounding may move a draw that lies on a boundary).
"""
import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import netsynth  # before torch: its OpenMP settings (netsynth/__init__.py) apply only then, as in the CLI
import torch
from netsynth import precision

parser = argparse.ArgumentParser()
parser.add_argument("model", help="a saved llama or mamba model (a folder written by netsynth train)")
parser.add_argument("--against", required=True, help="the git revision whose decoding.py is the reference")
parser.add_argument("--rounds", type=int, default=4)
parser.add_argument("--calls", type=int, default=60)
parser.add_argument("--batch", type=int, default=1024)
parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: both samplers under bf16 autocast")
args = parser.parse_args()
root = Path(__file__).resolve().parents[1]


def module_at(revision: str | None, name: str):
    """models/NAME of `revision` (None: the working tree) as a module of its own."""
    path = root / "src/netsynth/models" / name
    if revision is not None:
        source = subprocess.run(["git", "show", f"{revision}:src/netsynth/models/{name}"], cwd=root,
                                capture_output=True, text=True)
        if source.returncode:
            sys.exit(f"git show {revision}: {source.stderr.strip()}")
        path = Path(tempfile.mkdtemp()) / name
        path.write_text(source.stdout)
    spec = importlib.util.spec_from_file_location(f"{path.stem}_{revision or 'tree'}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def sampler_at(revision: str | None):
    """sample_tokens of `revision`, stepping that revision's decoders (its NumPy decoders too, where it has them,
    over its own folding)."""
    sequence, decoding = module_at(revision, "sequence.py"), module_at(revision, "decoding.py")
    sequence.decoder_for = decoding.decoder_for
    if hasattr(sequence, "numpy_decoder_for"):
        numpy_decoding = module_at(revision, "numpy_decoding.py")
        for name in ("_folded", "_folded_llama", "_folded_mamba", "_Projection"):
            setattr(numpy_decoding, name, getattr(decoding, name))
        sequence.numpy_decoder_for = numpy_decoding.numpy_decoder_for
        sequence.one_blas_thread = numpy_decoding.one_blas_thread
    return sequence.sample_tokens


model = netsynth.load(args.model)
samplers = {args.against: sampler_at(args.against), "working tree": sampler_at(None)}
one, batch = np.array([0]), np.arange(args.batch) % len(model.classes_)


def sample(name: str, codes: np.ndarray, seed: int) -> np.ndarray:
    with precision.autocast(args.precision, torch.device("cpu")):
        return samplers[name](model.module_, model.codec_, codes, seed=seed, batch_size=args.batch)


def seconds(name: str, codes: np.ndarray, calls: int) -> float:
    t0 = time.perf_counter()
    for seed in range(calls):
        sample(name, codes, seed)
    return (time.perf_counter() - t0) / calls


drawn = [sample(name, batch, seed=7) for name in samplers]  # also the warm-up
alone = [np.concatenate([sample(name, one, seed) for seed in range(args.calls)]) for name in samplers]
print(f"{model.kind}, {model.n_packets_} packets, {args.precision}; flows drawn identically by both: "
      f"{(drawn[0] == drawn[1]).all(axis=1).mean():.1%} of a batch, {(alone[0] == alone[1]).all(axis=1).mean():.1%} "
      "of one flow per call")
per_call = {name: [] for name in samplers}
rate = {name: [] for name in samplers}
for _ in range(args.rounds):
    for name in samplers:
        per_call[name].append(1000 * seconds(name, one, args.calls))
        rate[name].append(args.batch / seconds(name, batch, 2))
for name in samplers:
    print(f"{name:14s} one flow per call {np.median(per_call[name]):6.2f} ms (rounds {np.round(per_call[name], 2)}), "
          f"batch {args.batch} {np.median(rate[name]):6.0f} flows/s (rounds {np.round(rate[name])})")
ref, new = args.against, "working tree"
print(f"working tree / {ref}: one flow per call {np.median(per_call[ref]) / np.median(per_call[new]):.2f}x faster, "
      f"batch {np.median(rate[new]) / np.median(rate[ref]):.2f}x")
