"""The released-once DP generators across datasets: TSTR / train on real (3 forest seeds) without DP and at each
epsilon, on `FlowSet.split(test_size=0.2, seed=0)` of each FlowSet given, for each kind (the Markov chain's
transitions, the tables kind's whole flows and positions).

    python benchmarks/dp_release.py FLOWS.parquet [FLOWS.parquet ...] [--epsilons 1,4,16] [--kinds markov,tables]
"""
import argparse
import platform
import warnings

import numpy as np

import netsynth
from netsynth import FlowSet
from netsynth.tasks.tstr import forest_f1

SEEDS = (0, 1, 2)


def tstr(flows: FlowSet, test: FlowSet) -> float:
    return float(np.mean([forest_f1(flows, test, seed=s) for s in SEEDS]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("flows", nargs="+")
    parser.add_argument("--epsilons", default="1,4,16")
    parser.add_argument("--kinds", default="markov,tables")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the forests' notes on classes absent from a split
    print(f"{platform.processor() or platform.machine()}; synthetic flows with the training class counts, seed 0")
    for path in args.flows:
        train, test = FlowSet.read(path).split(test_size=0.2, seed=0)
        real = tstr(train, test)
        print(f"{path}: {len(train)} training flows, train on real {100 * real:.1f} %; TSTR / real:", flush=True)
        for kind in args.kinds.split(","):
            ratios = []
            for epsilon in [None, *map(float, args.epsilons.split(","))]:
                model = netsynth.create(kind).fit(train, dp_epsilon=epsilon)
                ratios.append(f"{'no DP' if epsilon is None else f'epsilon {epsilon:g}'} "
                              f"{tstr(model.sample(train.class_counts(), seed=0), test) / real:.2f}")
            print(f"  {kind:8s} {', '.join(ratios)}", flush=True)


if __name__ == "__main__":
    main()
