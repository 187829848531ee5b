"""The cost of a DP-SGD step: ghost clipping (netsynth's default) against per-flow gradients materialized
(Opacus's hooks, the reference) and against a plain step without privacy, same kind, batch and weights.

    python benchmarks/dp_speed.py [--kinds llama,mamba,cvae --batch-size 1024 --steps 3]

Each kind at its default size on the IoT Sentinel training split; seconds per step are the median of --steps
steps after one warm-up step; "peak MB" is the growth of the peak resident memory (ru_maxrss) during the mode's
steps, each kind in a process of its own, its modes in the order of the memory they need (plain, ghost, hooks).
"""
import argparse
import copy
import resource
import statistics
import subprocess
import sys
import time

import torch

import netsynth
from common import iot_train
from netsynth.machine import usable_cores
from netsynth.train import WithLoss, make_private, use_all_cores


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_seconds(step, steps: int) -> tuple[float, float]:
    before = peak_mb()
    step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), peak_mb() - before


def measure(kind: str, train, batch_size: int, steps: int) -> dict:
    model = netsynth.create(kind).fit(train, epochs=1, batch_size=batch_size)
    batch = [t[:batch_size] for t in model._tensors(train)]
    out = {}
    for mode in ("plain", "ghost", "hooks"):  # ascending memory, so that each peak shows its own growth
        module = copy.deepcopy(model.module_).train()
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
        if mode == "plain":
            wrapped, criterion = WithLoss(module, model._loss), (lambda loss: loss)
        else:
            loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*batch), batch_size)
            _, wrapped, optimizer, criterion, _ = make_private(
                mode, module=WithLoss(module, model._private_loss), optimizer=optimizer, data_loader=loader,
                target_epsilon=4.0, target_delta=1e-5, epochs=1, max_grad_norm=1.0)

        def step():
            loss = criterion(wrapped(*batch))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        out[mode] = step_seconds(step, steps)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kinds", default="llama,mamba,cvae")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # one kind, in a process of its own (its own memory peak)
    args = parser.parse_args()
    if args.one:
        use_all_cores()
        r = measure(args.one, iot_train(), args.batch_size, args.steps)
        (plain, _), (hooks, hooks_mb), (ghost, ghost_mb) = r["plain"], r["hooks"], r["ghost"]
        print(f"{args.one:6s} {plain:8.2f} {hooks:8.2f} {ghost:8.2f} {hooks / ghost:11.1f}x {ghost / plain:11.1f}x "
              f"{hooks_mb:14.0f} {ghost_mb:14.0f}", flush=True)
        return
    print(f"DP-SGD step at batch {args.batch_size}, {usable_cores()} cores, median of {args.steps} steps")
    print(f"{'kind':6s} {'plain s':>8s} {'hooks s':>8s} {'ghost s':>8s} {'hooks/ghost':>12s} {'ghost/plain':>12s} "
          f"{'hooks peak MB':>14s} {'ghost peak MB':>14s}", flush=True)
    for kind in args.kinds.split(","):
        subprocess.run([sys.executable, __file__, "--one", kind, "--batch-size", str(args.batch_size),
                        "--steps", str(args.steps)], check=True, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
