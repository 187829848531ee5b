"""The CVAE sampled at several temperatures (`netsynth generate --temperature`), the same trained model and seed.

    python benchmarks/cvae_temperature.py [--data flows.parquet] [--temperatures 1,0.8,0.7,0.5] [--seed S]

Without --data it splits ../shared/data/iot-sentinel (FlowSet.split(test_size=0.2, seed=0)); with --data, that
FlowSet the same way. Synthetic flows: the training split's class counts. Each line: TSTR beside train on real,
class fidelity, the six metrics against the test split.
"""
import argparse

from common import quality_lines, trained_cvae

parser = argparse.ArgumentParser()
parser.add_argument("--data")
parser.add_argument("--temperatures", default="1,0.8,0.7,0.5")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
train, test, model = trained_cvae(args.data, args.seed)
for temperature in (float(t) for t in args.temperatures.split(",")):
    scores, metrics = quality_lines(train, test, model.sample(train.present_counts(), seed=args.seed,
                                                              temperature=temperature))
    print(f"  temperature {temperature:<4g} {scores}")
    print(f"  {'':16s} {metrics}")
