"""llama or mamba trained with the plain loss and with `class_balance` (each flow's tokens weighted by its class's
inverse share of the training flows): TSTR / train on real and class fidelity, under training seeds 0-2.

    python benchmarks/class_balance.py FLOWS.parquet [--kind llama] [--variants plain,balanced]

Split `FlowSet.split(test_size=0.2, seed=0)`; seed S trains the model, draws the training split's class counts and
fits the TSTR forest; class fidelity is judged by the forest of seed 0 on the real training flows; train on real is
the mean of forests 0-2. The best validation loss of the balanced variant is the weighted one.
"""
import argparse
import time

import numpy as np

import netsynth
from netsynth import FlowSet
from netsynth.tasks.tstr import class_fidelity, forest, forest_f1

SEEDS = (0, 1, 2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("flows")
    parser.add_argument("--kind", default="llama", choices=["llama", "mamba"])
    parser.add_argument("--variants", default="plain,balanced")
    args = parser.parse_args()
    train, test = FlowSet.read(args.flows).split(test_size=0.2, seed=0)
    test = test.select(list(test.present_counts()))
    real = np.mean([forest_f1(train, test, seed=s) for s in SEEDS])
    judge = forest(train, 0)
    print(f"{args.flows} {args.kind}: class counts {list(train.class_counts().values())}, train on real "
          f"{100 * real:.1f} %", flush=True)
    for variant in args.variants.split(","):
        ratios, fidelities = [], []
        for seed in SEEDS:
            t0 = time.perf_counter()
            model = netsynth.create(args.kind, class_balance=variant == "balanced").fit(train, seed=seed)
            synth = model.sample(train.present_counts(), seed=seed)
            ratios.append(forest_f1(synth, test, seed=seed) / real)
            fidelities.append(class_fidelity(judge, synth))
            print(f"  {variant:8s} seed {seed}: TSTR / real {ratios[-1]:.3f}, class fidelity {100 * fidelities[-1]:.1f} %, "
                  f"best val {model.history_['best_val_loss']:.4f}, {time.perf_counter() - t0:.0f} s", flush=True)
        print(f"  {variant:8s} mean: TSTR / real {np.mean(ratios):.3f}, class fidelity {100 * np.mean(fidelities):.1f} %",
              flush=True)


if __name__ == "__main__":
    main()
