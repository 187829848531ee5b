"""NetDiffus-NR's training step in float32 and under bf16 autocast: whether precision auto should ever pick bf16 for it.

    python benchmarks/diffusion_step.py [--rounds 3] [--steps 8] [--train train.parquet]

netsynth's own loss (models/diffusion.py) on batches of 256 GASF images of the IoT Sentinel training split, AdamW,
one model per precision built from the same seed, alternating precisions round by round; milliseconds per step,
medians over the rounds, and the machine's matmul rates in both precisions beside them.
"""
import argparse
import statistics
import time

import netsynth  # before torch: its OpenMP settings (netsynth/__init__.py) apply only then, as in the CLI
import torch
from common import iot_train, matmul_peak, prepared

from netsynth.precision import autocast

parser = argparse.ArgumentParser()
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--steps", type=int, default=8)
parser.add_argument("--train", help="a FlowSet to train on instead of the IoT Sentinel training split")
args = parser.parse_args()
train = netsynth.FlowSet.read(args.train) if args.train else iot_train()
model = prepared("diffusion", train)
images, codes = model._tensors(train)
cpu = torch.device("cpu")


def built():
    torch.manual_seed(0)
    module = model._build().train()
    return module, torch.optim.AdamW(module.parameters(), lr=1e-4)


def step(module, optimizer, precision: str, i: int) -> None:
    rows = slice(i * 256 % (len(images) - 256), i * 256 % (len(images) - 256) + 256)
    with autocast(precision, cpu):
        loss = model._loss(module, images[rows], codes[rows])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


runs = {precision: built() for precision in ("fp32", "bf16")}
times = {precision: [] for precision in runs}
for _ in range(args.rounds):
    for precision, (module, optimizer) in runs.items():
        step(module, optimizer, precision, 0)  # warm-up: the first step of a precision allocates
        t0 = time.perf_counter()
        for i in range(args.steps):
            step(module, optimizer, precision, i)
        times[precision].append(1000 * (time.perf_counter() - t0) / args.steps)
fp32, bf16 = (statistics.median(times[p]) for p in ("fp32", "bf16"))
print(f"matmul peak: float32 {matmul_peak():.0f} GFLOP/s, bf16 {matmul_peak(torch.bfloat16):.0f} GFLOP/s")
n_parameters = sum(p.numel() for p in runs["fp32"][0].parameters())
print(f"{n_parameters:,} parameters, {len(images)} images of {tuple(images.shape[1:])}, batch 256")
for precision in times:
    print(f"{precision}: {statistics.median(times[precision]):.0f} ms/step (rounds {[round(t) for t in times[precision]]})")
print(f"bf16 / fp32 step time: {bf16 / fp32:.2f}")
