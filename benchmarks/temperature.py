"""Saved models of a `netsynth benchmark` folder sampled at several temperatures (`netsynth generate --temperature`).

    python benchmarks/temperature.py docs/results/FOLDER [--kind llama] [--temperatures 1,0.9,0.8]

The folder's cache holds its split (cache/train.parquet, cache/test.parquet) and a model of KIND per seed
(cache/models/KIND, KIND-seed1, KIND-seed2). Each model samples the training split's class counts with its own seed
at each temperature; a forest of the same seed scores them. Each line: TSTR beside train on real, class fidelity,
the six metrics against the test split.
"""
import argparse
from pathlib import Path

import netsynth
from common import quality_lines

parser = argparse.ArgumentParser()
parser.add_argument("folder", type=Path)
parser.add_argument("--kind", default="llama")
parser.add_argument("--temperatures", default="1,0.9,0.8")
args = parser.parse_args()
cache = args.folder / "cache"
train, test = netsynth.FlowSet.read(cache / "train.parquet"), netsynth.FlowSet.read(cache / "test.parquet")
for seed, name in enumerate([args.kind, f"{args.kind}-seed1", f"{args.kind}-seed2"]):
    if not (cache / "models" / name).is_dir():
        print(f"{name}: not in {cache / 'models'}")
        continue
    model = netsynth.load(cache / "models" / name)
    print(f"{args.folder.name}, {name} (seed {seed})")
    for temperature in (float(t) for t in args.temperatures.split(",")):
        synth = model.sample(train.present_counts(), seed=seed, temperature=temperature)
        scores, metrics = quality_lines(train, test, synth, forest_seed=seed)
        print(f"  temperature {temperature:<4g} {scores}")
        print(f"  {'':16s} {metrics}", flush=True)
