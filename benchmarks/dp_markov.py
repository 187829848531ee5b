"""The DP Markov chain's utility across datasets: TSTR / train on real (3 forest seeds) without DP and at each
epsilon, on `FlowSet.split(test_size=0.2, seed=0)` of each FlowSet given.

    python benchmarks/dp_markov.py FLOWS.parquet [FLOWS.parquet ...] [--epsilons 1,4,16]
"""
import argparse
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
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the forests' notes on classes absent from a split
    for path in args.flows:
        train, test = FlowSet.read(path).split(test_size=0.2, seed=0)
        real = tstr(train, test)
        ratios = []
        for epsilon in [None, *map(float, args.epsilons.split(","))]:
            model = netsynth.create("markov").fit(train, dp_epsilon=epsilon)
            ratios.append(f"{'no DP' if epsilon is None else f'epsilon {epsilon:g}'} "
                          f"{tstr(model.sample(train.class_counts(), seed=0), test) / real:.2f}")
        print(f"{path}: {len(train)} training flows, train on real {100 * real:.1f} %; TSTR / real: {', '.join(ratios)}",
              flush=True)


if __name__ == "__main__":
    main()
