"""Exact copies of long training flows class by class: whether a generator copies more than real traffic repeats
within each class, or only draws more flows of the classes that repeat.

    python benchmarks/copies_by_class.py --train T.parquet --test H.parquet --synthetic S.parquet [--min-packets 4]

The privacy audit's `exact_copies_long` (synthetic flows of 4+ packets found verbatim in the training split) is
compared there with one base rate over the whole test split, whose class mix is not the synthetic set's. Here both
are taken per class and weighted alike, by each class's long training flows (what a model that learned every class's
distribution would draw, given the training class counts); a class without a long test flow or a long synthetic
flow is left out.
"""
import argparse

import numpy as np

from netsynth import FlowSet
from netsynth.privacy import copies

parser = argparse.ArgumentParser()
parser.add_argument("--train", required=True)
parser.add_argument("--test", required=True)
parser.add_argument("--synthetic", required=True)
parser.add_argument("--min-packets", type=int, default=4)
args = parser.parse_args()
train, test, synth = (FlowSet.read(p) for p in (args.train, args.test, args.synthetic))
long = {name: (f.direction != 0).sum(1) >= args.min_packets for name, f in (("train", train), ("test", test),
                                                                          ("synth", synth))}
copied = {"test": copies(test, train, args.min_packets), "synth": copies(synth, train, args.min_packets)}
flows = {"train": train, "test": test, "synth": synth}


def rows_of(name: str, c: str) -> np.ndarray:
    f = flows[name]
    return long[name] & (f.label == c)


print(f"{args.synthetic}: {long['synth'].sum()} synthetic flows of {args.min_packets}+ packets, "
      f"{long['test'].sum()} real test flows")
print(f"{'class':22s} {'long train':>10s} {'long test':>9s} {'copies test':>11s} {'copies synth':>12s}")
weights, rates = [], []
for c in train.classes:
    if not rows_of("test", c).any() or not rows_of("synth", c).any():
        continue
    weights.append(rows_of("train", c).sum())
    rates.append((copied["test"][rows_of("test", c)].mean(), copied["synth"][rows_of("synth", c)].mean()))
    print(f"{c:22s} {weights[-1]:10d} {rows_of('test', c).sum():9d} {rates[-1][0]:11.2f} {rates[-1][1]:12.2f}")
test_rate, synth_rate = np.average(np.array(rates), axis=0, weights=weights)
print(f"overall: synthetic {copied['synth'][long['synth']].mean():.3f}, real test flows (the audit's base rate) "
      f"{copied['test'][long['test']].mean():.3f}")
print(f"each class weighted by its long training flows: synthetic {synth_rate:.3f}, real test flows {test_rate:.3f} "
      f"({sum(weights)} of {long['train'].sum()} long training flows in the classes compared)")
