"""Generation speed: netsynth's samplers beside the usual reference, in the same process.

    python benchmarks/generation.py [--epochs 2] [--flows 4096]

- llama and mamba (paper sizes, trained briefly on IoT Sentinel so that flows end at <EOS> as they do in
  use): the batched KV-cache loop with inverse-CDF sampling vs transformers `generate()` (sampling, same
  batch of 1024, same maximum length), in flows per second.
- diffusion (NetDiffus-NR): DPM-Solver++ with the default 20 steps vs DDIM with 50 steps, in ms per flow.
"""
import argparse
import time

import numpy as np
import torch

import netsynth
from common import iot_train
from netsynth.codecs.tokens import EOS, PAD

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--flows", type=int, default=4096)
args = parser.parse_args()
train = iot_train()
torch.set_num_threads(torch.get_num_threads())
print(f"torch threads {torch.get_num_threads()}, {args.flows} flows, batch 1024")


def per_class(n):
    k = max(1, n // len(train.classes))
    return {c: k for c in train.classes}


for kind in ("llama", "mamba"):
    model = netsynth.create(kind).fit(train, epochs=args.epochs)
    counts = per_class(args.flows)
    model.sample(per_class(1024), seed=0)  # warm-up
    t0 = time.perf_counter()
    flows = model.sample(counts, seed=0)
    ours = time.perf_counter() - t0
    codes = np.repeat(np.arange(len(model.classes_)), list(counts.values()))
    prompts = torch.from_numpy(model.codec_.class_token(codes))[:, None]
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(prompts), 1024):
            model.module_.generate(prompts[i:i + 1024], max_new_tokens=model.n_packets_ + 1, do_sample=True,
                                   eos_token_id=EOS, pad_token_id=PAD)
    ref = time.perf_counter() - t0
    n = len(flows)
    print(f"{kind:9s} netsynth sampler {n / ours:7.0f} flows/s ({1000 * ours / n:.2f} ms/flow) | "
          f"transformers generate() {n / ref:7.0f} flows/s | ratio {ref / ours:.2f}x")

model = netsynth.create("diffusion").fit(train, epochs=args.epochs)
n = 1024
counts = per_class(n)
for label, steps, sampler in (("DPM-Solver++ 20 steps (default)", 20, "dpm-solver++"), ("DDIM 50 steps (reference)", 50, "ddim")):
    t0 = time.perf_counter()
    flows = model.sample(counts, seed=0, steps=steps, sampler=sampler)
    took = time.perf_counter() - t0
    print(f"diffusion {label:32s} {1000 * took / len(flows):6.2f} ms/flow")
