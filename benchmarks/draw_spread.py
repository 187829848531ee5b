"""How far TSTR moves between synthetic draws of one trained model: a results folder's cached models, sampled again.

    python benchmarks/draw_spread.py docs/results/FOLDER KIND [KIND ...] [--draws 5]

For each KIND (its model in FOLDER/cache/models), beside the folder's committed TSTR / train on real per seed:
`--draws` fresh synthetic sets (the training split's class counts, sampling seeds 1..draws), each scored by the
forest of seed 0, as a ratio to the folder's mean train on real; their mean and standard deviation.
"""
import argparse
import json
from pathlib import Path

import numpy as np

import netsynth
from netsynth import FlowSet
from netsynth.tasks.tstr import forest_f1

parser = argparse.ArgumentParser()
parser.add_argument("folder", type=Path)
parser.add_argument("kinds", nargs="+")
parser.add_argument("--draws", type=int, default=5)
args = parser.parse_args()
steps = json.loads((args.folder / "results.json").read_text())["steps"]
cache = args.folder / "cache"
train, test = FlowSet.read(cache / "train.parquet"), FlowSet.read(cache / "test.parquet")
test = test.select(list(test.present_counts()))
real = np.mean(steps["train_on_real"]["f1"])
for kind in args.kinds:
    model = netsynth.load(cache / "models" / kind)
    committed = np.array(steps[f"tstr:{kind}"]["f1"]) / real
    fresh = np.array([forest_f1(model.sample(train.present_counts(), seed=s), test, seed=0)
                      for s in range(1, args.draws + 1)]) / real
    print(f"{args.folder.name} {kind}: committed {committed.mean():.3f} (seeds {', '.join(f'{x:.3f}' for x in committed)}); "
          f"{args.draws} fresh draws {', '.join(f'{x:.3f}' for x in fresh)}: mean {fresh.mean():.3f}, sd {fresh.std(ddof=1):.3f}",
          flush=True)
