"""llama's attention kernel for training on a CPU: transformers' eager attention beside scaled_dot_product_attention.

    python benchmarks/attention.py [--rounds 2] [--train train.parquet]

The bare loop of benchmarks/training.py (AdamW, batch 256, netsynth's loss, 10,240 flows of the IoT Sentinel training
split) with each kernel, alternating, in float32 and under bf16 autocast; seconds per epoch, medians over the rounds.
Also the largest difference between the two kernels' gradients on one batch (the same weights), relative to the
largest gradient. netsynth trains llama with eager attention on a CPU (models/llama.py).
"""
import argparse
import time

import netsynth  # before torch: its OpenMP settings (netsynth/__init__.py) apply only then, as in the CLI
import numpy as np
import torch
from common import iot_train, prepared

parser = argparse.ArgumentParser()
parser.add_argument("--rounds", type=int, default=2)
parser.add_argument("--train", help="a FlowSet to train on instead of the IoT Sentinel training split")
args = parser.parse_args()
train = netsynth.FlowSet.read(args.train) if args.train else iot_train()
model = prepared("llama", train)
ids = torch.from_numpy(model.codec_.encode(train))[:10240]


def built(kernel: str):
    torch.manual_seed(0)
    module = model._build().train()
    module.config._attn_implementation = kernel
    return module


def epoch(kernel: str, precision: str) -> float:
    module = built(kernel)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for i in range(0, len(ids), 256):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model._loss(module, ids[i:i + 256])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - t0


grads = {}
for kernel in ("sdpa", "eager"):
    module = built(kernel)
    model._loss(module, ids[:256]).backward()
    grads[kernel] = torch.cat([p.grad.flatten() for p in module.parameters()])
error = ((grads["eager"] - grads["sdpa"]).abs().max() / grads["sdpa"].abs().max()).item()
print(f"{torch.get_num_threads()} threads; gradients of one batch, eager against sdpa: largest difference {error:.1e} "
      "of the largest gradient")
for precision in ("fp32", "bf16"):
    seconds = {kernel: [] for kernel in ("sdpa", "eager")}
    for _ in range(args.rounds):
        for kernel in seconds:
            seconds[kernel].append(epoch(kernel, precision))
    sdpa, eager = (float(np.median(seconds[k])) for k in ("sdpa", "eager"))
    print(f"{precision}: sdpa {sdpa:.2f} s/epoch {np.round(seconds['sdpa'], 2)}, eager {eager:.2f} s/epoch "
          f"{np.round(seconds['eager'], 2)}; eager / sdpa: {sdpa / eager:.2f}x faster")
