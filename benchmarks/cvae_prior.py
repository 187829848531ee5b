"""The CVAE's prior at sampling: a Gaussian per class with the moments of the training flows' aggregate
posterior (the default, Ghosh et al. 2020's ex-post density estimation) against N(0, I), for the same trained
model and seed.

    python benchmarks/cvae_prior.py [--data flows.parquet] [--seed S]

Without --data it splits ../shared/data/iot-sentinel (FlowSet.split(test_size=0.2, seed=0)); with --data, that
FlowSet the same way. Synthetic flows: the training split's class counts.
"""
import argparse

import torch

from common import quality_lines, trained_cvae

parser = argparse.ArgumentParser()
parser.add_argument("--data")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
train, test, model = trained_cvae(args.data, args.seed)
fitted = model.module_.prior_mean.clone(), model.module_.prior_scale.clone()
standard = torch.zeros_like(fitted[0]), torch.eye(fitted[1].shape[-1]).expand_as(fitted[1])
for label, (mean, scale) in (("class-posterior prior", fitted), ("N(0, I) prior", standard)):
    model.module_.prior_mean.copy_(mean)
    model.module_.prior_scale.copy_(scale)
    scores, metrics = quality_lines(train, test, model.sample(train.present_counts(), seed=args.seed))
    print(f"  {label:22s} {scores}")
    print(f"  {'':22s} {metrics}")
