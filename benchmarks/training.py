"""Training speed: flows per second of netsynth's training loop beside a bare PyTorch loop, same process.

    python benchmarks/training.py [--epochs 1]

The reference trains the same llama module with the same data and batch size (256) in the plainest loop
(forward, backward, AdamW step), so the ratio shows what the loop adds (Accelerate, validation,
checkpoints, schedule). mamba, cvae and diffusion are timed through netsynth at their paper sizes.
"""
import argparse
import tempfile
import time

import torch

import netsynth
from common import iot_train

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
args = parser.parse_args()
train = iot_train()
n_train = int(round(len(train) * 0.9))  # the loop holds 10 % out for validation
print(f"{len(train)} flows ({n_train} trained per epoch), batch 256, torch threads {torch.get_num_threads()}")

results = {}
for kind in ("llama", "mamba", "cvae", "diffusion"):
    with tempfile.TemporaryDirectory() as ckpt:
        model = netsynth.create(kind)
        t0 = time.perf_counter()
        model.fit(train, epochs=args.epochs, batch_size=256, patience=99, checkpoint_dir=ckpt)
        took = time.perf_counter() - t0
    per_epoch = sum(model.history_["seconds"]) / len(model.history_["seconds"])
    results[kind] = (n_train / per_epoch, per_epoch, model.n_parameters)
    print(f"{kind:9s} {n_train / per_epoch:7.0f} flows/s  {per_epoch:6.1f} s/epoch  {model.n_parameters:,} parameters")

# reference: the bare loop on the llama module
model = netsynth.create("llama")
model.classes_, model.n_packets_, model.max_size_ = train.classes, train.n_packets, 1500
model._prepare(train)
torch.manual_seed(0)
module = model._build().train()
ids = torch.from_numpy(model.codec_.encode(train))[:n_train]
opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
t0 = time.perf_counter()
for i in range(0, len(ids), 256):
    loss = model._loss(module, ids[i:i + 256])
    opt.zero_grad()
    loss.backward()
    opt.step()
bare = time.perf_counter() - t0
print(f"llama bare PyTorch loop {n_train / bare:7.0f} flows/s | netsynth loop / bare = {results['llama'][0] / (n_train / bare):.2f}")
print(f"mamba / llama training speed: {results['mamba'][0] / results['llama'][0]:.2f}")
