"""Where a DP release loses its F1: per-class TSTR F1 of the tables kind without DP and at each epsilon, beside
train on real, with the classes grouped by their number of training flows, and the share of each group's synthetic
flows that the release drew whole (the recurring flows that cleared the partition-selection bar).

    python benchmarks/dp_classes.py FLOWS.parquet [--epsilons 4] [--kind tables] [--groups 4]

Split `FlowSet.split(test_size=0.2, seed=0)`; synthetic flows with the training class counts, seed 0; one forest
per seed 0-2 on each training set; a class's F1 is the mean over the three forests.
"""
import argparse
import platform
import warnings

import numpy as np
from sklearn.metrics import f1_score

import netsynth
from netsynth import FlowSet
from netsynth.tasks.tstr import features, forest

SEEDS = (0, 1, 2)


def class_f1(train: FlowSet, test: FlowSet, labels: list[str]) -> np.ndarray:
    """[classes] F1 of each class on `test`, the mean over the forests of SEEDS trained on `train`."""
    truth = test.label.astype(str)
    return np.mean([f1_score(truth, forest(train, seed).predict(features(test)), labels=labels, average=None,
                             zero_division=0) for seed in SEEDS], axis=0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("flows")
    parser.add_argument("--epsilons", default="4")
    parser.add_argument("--kind", default="tables")
    parser.add_argument("--groups", type=int, default=4)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the forests' notes on classes absent from a split
    train, test = FlowSet.read(args.flows).split(test_size=0.2, seed=0)
    labels = sorted(test.present_counts())
    counts = train.class_counts()
    size = np.array([counts[c] for c in labels])
    groups = np.array_split(np.argsort(size, kind="stable"), args.groups)  # classes from the smallest up
    columns = {"train on real": class_f1(train, test, labels)}
    whole = {}
    for epsilon in [None, *map(float, args.epsilons.split(","))]:
        name = f"{args.kind} " + ("no DP" if epsilon is None else f"epsilon {epsilon:g}")
        model = netsynth.create(args.kind).fit(train, dp_epsilon=epsilon)
        columns[name] = class_f1(model.sample(train.class_counts(), seed=0), test, labels)
        if hasattr(model, "_whole_share"):
            share = dict(zip(model.classes_, model._whole_share))
            whole[name] = np.array([share[c] for c in labels])
    print(f"{platform.processor() or platform.machine()}; {args.flows}: {len(train)} training flows, "
          f"{len(labels)} classes with test flows; macro F1 % per group of classes (by training flows)")
    print("classes  training flows  " + "  ".join(f"{k:>18s}" for k in columns) + "  "
          + "  ".join(f"drawn whole, {k}" for k in whole))
    for g in groups + [np.arange(len(labels))]:
        span = f"{size[g].min()}-{size[g].max()}"
        print(f"{len(g):7d}  {span:>14s}  " + "  ".join(f"{100 * v[g].mean():18.1f}" for v in columns.values())
              + "  " + "  ".join(f"{100 * v[g].mean():>{len('drawn whole, ') + len(k)}.0f}" for k, v in whole.items()))


if __name__ == "__main__":
    main()
