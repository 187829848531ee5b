"""How a generator's TSTR / train on real grows with its training flows: a learning curve.

    python benchmarks/data_size.py KIND [KIND ...] --data flows.parquet [--fractions 0.25,0.5,1] [--seeds 0,1]

The FlowSet is split as the README's results split it (FlowSet.split(test_size=0.2, seed=0): by capture where the
flows have groups). For each fraction f and seed s, f of each class's training flows (at least 2; drawn at random
with seed s, the same draw for every kind) train the model at its defaults (training seed s); it draws that subset's
class counts (seed s), and TSTR over forest seeds 0-2 is divided by train on real on the same subset with the same
forests, against the same test split. The paper's datasets hold about 100,000 flows; those of the README's results
768 to 11,796 training flows: the curve says how much of a gap to the paper's ratios the data size could explain.
"""
import argparse
import time

import numpy as np

import netsynth
from netsynth import FlowSet
from netsynth.tasks.tstr import class_fidelity, forest, forest_f1

parser = argparse.ArgumentParser()
parser.add_argument("kinds", nargs="+")
parser.add_argument("--data", required=True)
parser.add_argument("--fractions", default="0.25,0.5,1")
parser.add_argument("--seeds", default="0,1")
args = parser.parse_args()
fractions, seeds = [float(f) for f in args.fractions.split(",")], [int(s) for s in args.seeds.split(",")]
train, test = FlowSet.read(args.data).split(test_size=0.2, seed=0)
FORESTS = (0, 1, 2)


def subset(fraction: float, seed: int) -> FlowSet:
    """`fraction` of each class's training flows (at least 2), at random."""
    rng = np.random.default_rng(seed)
    rows = [rng.choice(members, max(2, round(fraction * len(members))), replace=False)
            for c in range(len(train.classes)) if len(members := np.flatnonzero(train.codes == c))]
    return train.take(np.sort(np.concatenate(rows)))


print(f"{args.data}: {len(train)} training flows, {len(test)} test flows, {len(train.classes)} classes; "
      f"TSTR / train on real over forest seeds {list(FORESTS)}")
rows = []
for fraction in fractions:
    for seed in seeds:
        part = subset(fraction, seed)
        real = np.mean([forest_f1(part, test, seed=f) for f in FORESTS])
        real_forest = forest(part, seed=0)
        for kind in args.kinds:
            t0 = time.perf_counter()
            model = netsynth.create(kind).fit(part, seed=seed)
            synth = model.sample(part.present_counts(), seed=seed)
            ratio = np.mean([forest_f1(synth, test, seed=f) for f in FORESTS]) / real
            rows.append((kind, fraction, seed, ratio))
            print(f"  {kind:9s} fraction {fraction:.2f} ({len(part)} flows) seed {seed}: train on real {100 * real:.1f} %, "
                  f"TSTR / real {ratio:.3f}, class fidelity {100 * class_fidelity(real_forest, synth):.1f} % "
                  f"(real test flows {100 * class_fidelity(real_forest, test):.1f} %); {time.perf_counter() - t0:.0f} s",
                  flush=True)
for kind in args.kinds:
    print(f"{kind}: mean TSTR / real over seeds {seeds}: " + ", ".join(
        f"{f:g}: {np.mean([r for k, fr, _, r in rows if k == kind and fr == f]):.3f}" for f in fractions))
