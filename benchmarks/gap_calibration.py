"""What the class bias of the gap head does (models/sequence.py `_calibrate_gaps`): the timing metrics (jsd_log_iat,
jsd_duration) against the real test split, as multiples of the real-vs-real floor, with the fitted bias and with
it set to zero.

    python benchmarks/gap_calibration.py BENCHMARK_DIR [--kind llama] [--seeds 4]

BENCHMARK_DIR is the output of `netsynth benchmark DATA -o DIR --models llama --timing` (it reads the split and the
trained model from DIR/cache). Gaps are drawn two ways, each with seeds 0..S-1: for the real training flows' own
sizes (what the head saw in training: this isolates the head) and for flows the model samples (sizes and gaps
both synthetic, the training split's class counts, as the benchmark scores them).
"""
import argparse
from pathlib import Path

import numpy as np
import torch

import netsynth
from netsynth import FlowSet
from netsynth.timing import has_gap, timing_fidelity

parser = argparse.ArgumentParser()
parser.add_argument("dir", type=Path)
parser.add_argument("--kind", default="llama")
parser.add_argument("--seeds", type=int, default=4)
args = parser.parse_args()
cache = args.dir / "cache"
train, test = FlowSet.read(cache / "train.parquet"), FlowSet.read(cache / "test.parquet")
model = netsynth.load(cache / "models" / args.kind)
tested = list(test.classes)
floor = timing_fidelity(test, train.select(tested))["macro"]
real = train.select(list(model.classes_)).with_classes(model.classes_)
real_tokens = model.codec_.encode(real)[:, 1:1 + real.n_packets]


def score(flows: FlowSet) -> dict:
    return timing_fidelity(test, flows.select(tested))["macro"]


def on_real_sizes(seed: int) -> dict:
    flows = real.take(np.arange(len(real)))
    flows.iat = model._draw_iat(real_tokens, real.codes, has_gap(real.direction), seed, 1024, "cpu")
    return score(flows)


def on_own_sizes(seed: int) -> dict:
    return score(model.sample(train.present_counts(), seed=seed))


print(f"{args.dir}: {args.kind}, seeds 0-{args.seeds - 1}; mean (multiple of the floor) [each seed]; real-vs-real floor: "
      + ", ".join(f"{name} {value:.4f}" for name, value in floor.items()))
fitted = model.module_.iat_bias.clone()
for label, bias in (("class bias fitted", fitted), ("class bias zero", torch.zeros_like(fitted))):
    model.module_.iat_bias.copy_(bias)
    for what, fn in (("real training sizes", on_real_sizes), ("sampled sizes", on_own_sizes)):
        scores = [fn(s) for s in range(args.seeds)]
        for name in floor:
            values = [score[name] for score in scores]
            print(f"{label:18s} {what:20s} {name:12s} {np.mean(values):.4f} ({np.mean(values) / floor[name]:.2f}x)  "
                  f"[{' '.join(f'{v:.4f}' for v in values)}]")
