"""A kind trained with the average of its weights (`netsynth train --ema`), seed by seed, beside a results folder's
models of the same seeds trained without it.

    python benchmarks/ema_seeds.py KIND --data FLOWS.parquet --results docs/results/NAME [--seeds 1,2,0]

For each seed, as `netsynth benchmark` does for a seed's own model (experiment.seed_model_step): the split
`FlowSet.split(test_size=0.2, seed=0)`, a model trained with that seed and `ema=True` at the kind's defaults, its draw
of the training split's class counts with that seed, scored by the forest of that seed (TSTR) and by the real
flows' forest of seed 0 (class fidelity). The folder's results.json gives the same figures of its own model of the
seed (seed 0's TSTR there is the mean over the forests of its pool's three draws) and train on real, which must come
out here the same to the last digit: the check that both see one split.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

import netsynth
from netsynth import FlowSet
from netsynth.tasks.tstr import class_fidelity, forest, forest_f1

parser = argparse.ArgumentParser()
parser.add_argument("kind")
parser.add_argument("--data", required=True)
parser.add_argument("--results", required=True, help="a results folder of netsynth benchmark on the same FlowSet")
parser.add_argument("--seeds", default="1,2,0")
args = parser.parse_args()
steps = json.loads((Path(args.results) / "results.json").read_text())["steps"]
train, test = FlowSet.read(args.data).split(test_size=0.2, seed=0)
test = test.select(list(test.present_counts()))
seeds = [int(s) for s in args.seeds.split(",")]
real = steps["train_on_real"]["f1"]
mine = [forest_f1(train, test, seed=s) for s in range(len(real))]
if not np.allclose(mine, real):
    raise SystemExit(f"train on real {mine} here against {real} in {args.results}: not the folder's split")
real_mean = float(np.mean(real))
judge = forest(train, seed=0)
print(f"{args.kind} on {args.data}: train on real {100 * real_mean:.1f} % (as in {args.results}), class fidelity of "
      f"the real test flows {100 * class_fidelity(judge, test):.1f} %")
rows = []
for seed in seeds:
    t0 = time.perf_counter()
    model = netsynth.create(args.kind).fit(train, seed=seed, ema=True, verbose=True)
    took = time.perf_counter() - t0
    synth = model.sample(train.present_counts(), seed=seed)
    f1, fidelity = forest_f1(synth, test, seed=seed), class_fidelity(judge, synth)
    own = steps[f"tstr:{args.kind}"] if seed == 0 else steps[f"tstr:{args.kind}:seed{seed}"]
    own_f1 = float(np.mean(own["f1"])) if seed == 0 else own["f1"]
    rows.append((f1 / real_mean, own_f1 / real_mean))
    print(f"seed {seed}: averaged weights TSTR / train on real {f1 / real_mean:.3f}, class fidelity "
          f"{100 * fidelity:.1f} % ({took:.0f} s, {len(model.history_['epochs'])} epochs, best validation loss "
          f"{model.history_['best_val_loss']:.4f}); the folder's own weights {own_f1 / real_mean:.3f}, "
          f"{100 * own['class_fidelity']:.1f} %", flush=True)
averaged, own = np.mean(rows, axis=0)
print(f"mean over seeds {seeds}: averaged weights {averaged:.3f}, the folder's own weights {own:.3f}")
