"""The CVAE's prior at sampling: a Gaussian per class with the moments of the training flows' aggregate
posterior (the default, Ghosh et al. 2020's ex-post density estimation) against N(0, I), for the same trained
model and seed.

    python benchmarks/cvae_prior.py [--data flows.parquet] [--seed S]

Without --data it splits ../shared/data/iot-sentinel (FlowSet.split(test_size=0.2, seed=0)); with --data, that
FlowSet the same way. Synthetic flows: the training split's class counts.
"""
import argparse
import time

import torch

import netsynth
from common import iot_split, quality_lines
from netsynth import FlowSet

parser = argparse.ArgumentParser()
parser.add_argument("--data")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
train, test = FlowSet.read(args.data).split(test_size=0.2, seed=0) if args.data else iot_split()
t0 = time.perf_counter()
model = netsynth.create("cvae").fit(train, seed=args.seed)
print(f"cvae on {args.data or 'IoT Sentinel'}: trained in {time.perf_counter() - t0:.0f} s, "
      f"{len(model.history_['epochs'])} epochs, seed {args.seed}")
fitted = model.module_.prior_mean.clone(), model.module_.prior_scale.clone()
standard = torch.zeros_like(fitted[0]), torch.eye(fitted[1].shape[-1]).expand_as(fitted[1])
for label, (mean, scale) in (("class-posterior prior", fitted), ("N(0, I) prior", standard)):
    model.module_.prior_mean.copy_(mean)
    model.module_.prior_scale.copy_(scale)
    scores, metrics = quality_lines(train, test, model.sample(train.present_counts(), seed=args.seed))
    print(f"  {label:22s} {scores}")
    print(f"  {'':22s} {metrics}")
