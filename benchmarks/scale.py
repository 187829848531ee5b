"""Costs as the data grow: IoT Sentinel resampled to 10 k, 100 k and 1 M flows, time and peak memory per stage.

    python benchmarks/scale.py [--sizes 10000,100000,1000000] [--work /tmp/netsynth-scale]
        [--train train.parquet --test test.parquet]

For each size n: a training set of about n flows and a test set of n / 4, drawn with replacement from the
IoT Sentinel split (each class in its share); then, each stage in a fresh process so that its peak memory is its own:
    read     FlowSet.read of the training Parquet (what every command does with an ingested file)
    train    one llama epoch (paper size, batch 256, float32)
    generate n flows with the training set's class counts
    metrics  the six fidelity metrics of the synthetic flows against the test set (leakage against training)
    tstr     train on synthetic, test on real, beside train on real
Prints seconds and peak resident memory per stage and size, and each one's growth over the size before.
"""
import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

STAGES = ("read", "train", "generate", "metrics", "tstr")


def run_stage(stage: str, work: Path, n: int) -> None:
    """One stage in this process; prints {"seconds", "peak_mb"} as JSON."""
    import netsynth
    from netsynth import FlowSet

    train_path, test_path = work / f"train-{n}.parquet", work / f"test-{n}.parquet"
    synth_path, model_dir = work / f"synth-{n}.parquet", work / f"llama-{n}"
    inputs = {"read": [], "train": [train_path], "generate": [train_path], "metrics": [train_path, test_path, synth_path],
              "tstr": [train_path, test_path, synth_path]}[stage]
    loaded = [FlowSet.read(p) for p in inputs]  # inputs other than the stage's own work are read before the clock
    t0 = time.perf_counter()
    if stage == "read":
        FlowSet.read(train_path)
    elif stage == "train":
        netsynth.create("llama").fit(loaded[0], epochs=1, min_steps=0, precision="fp32").save(model_dir)
    elif stage == "generate":
        netsynth.load(model_dir).sample(loaded[0].present_counts(), seed=0).write(synth_path)
    elif stage == "metrics":
        from netsynth.metrics import fidelity
        fidelity(loaded[1], loaded[2], train=loaded[0])
    else:
        from netsynth.tasks.tstr import tstr
        tstr(*loaded)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def resample(flows, n: int, seed: int):
    """About n flows drawn with replacement, each class in its own share and at least once (every class in every set)."""
    rng = np.random.default_rng(seed)
    picks = []
    for code in range(len(flows.classes)):
        members = np.flatnonzero(flows.codes == code)
        if len(members):
            picks.append(rng.choice(members, max(1, round(n * len(members) / len(flows)))))
    return flows.take(np.concatenate(picks))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--work", default="/tmp/netsynth-scale")
    parser.add_argument("--train")
    parser.add_argument("--test")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)  # a child process's one stage
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work)
    if args.stage:
        return run_stage(args.stage, work, args.size)

    from common import iot_split
    from netsynth import FlowSet
    train, test = (FlowSet.read(args.train), FlowSet.read(args.test)) if args.train else iot_split()
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"IoT Sentinel split ({len(train)} training, {len(test)} test flows) resampled; llama one epoch, float32")
    print(f"{'flows':>9s} " + " ".join(f"{s + ' s':>10s} {s + ' MB':>11s}" for s in STAGES))
    previous = None
    for n in sizes:
        resample(train, n, 0).write(work / f"train-{n}.parquet")
        resample(test, n // 4, 1).write(work / f"test-{n}.parquet")
        row = {}
        for stage in STAGES:
            out = subprocess.run([sys.executable, __file__, "--stage", stage, "--size", str(n), "--work", str(work)],
                                 check=True, capture_output=True, text=True).stdout
            row[stage] = json.loads(out.strip().splitlines()[-1])
        print(f"{n:9d} " + " ".join(f"{row[s]['seconds']:10.1f} {row[s]['peak_mb']:11.0f}" for s in STAGES), flush=True)
        if previous:
            growth = n / previous[0]
            print(f"{'x' + format(growth, 'g'):>9s} " + " ".join(
                f"{row[s]['seconds'] / previous[1][s]['seconds']:9.1f}x {row[s]['peak_mb'] / previous[1][s]['peak_mb']:10.1f}x"
                for s in STAGES), flush=True)
        previous = (n, row)


if __name__ == "__main__":
    main()
