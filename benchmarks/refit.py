"""Does training on past the early-stopped model, to a learning rate of 0, make better synthetic flows or copies?

    python benchmarks/refit.py flows.parquet [--kind llama] [--seeds 0,1,2]

For each seed, on `FlowSet.split(test_size=0.2, seed=0)` of the file: the model at its defaults (early stopping on the
10 % validation hold-out, best weights, cool-down), then two models trained as many epochs as it ran, without a
hold-out (so without early stopping: the learning rate decays to 0 over the epochs, the lowest training loss is kept),
from the same initialization: "refit" on every training flow (the hold-out put back, as a refit after model selection
would), "sched90" on the flows the default trained on (the same data, only the schedule and selection differ). Each
line: TSTR beside train on real and class fidelity (forest seed 0), then the privacy audit's exact copies (flows of 4+
packets and all, beside the real test flows' share), the share closer to training than to test, and the black-box
membership AUC (netsynth.privacy).
"""
import argparse
import time

import numpy as np

import netsynth
from common import quality_lines
from netsynth.privacy import audit

parser = argparse.ArgumentParser()
parser.add_argument("data")
parser.add_argument("--kind", default="llama")
parser.add_argument("--seeds", default="0,1,2")
args = parser.parse_args()
train, test = netsynth.FlowSet.read(args.data).split(test_size=0.2, seed=0)
for seed in (int(s) for s in args.seeds.split(",")):
    t0 = time.perf_counter()
    default = netsynth.create(args.kind).fit(train, seed=seed)
    runs = {"default": (default, time.perf_counter() - t0)}
    epochs = len(default.history_["epochs"])
    held_out = np.random.default_rng(seed).permutation(len(train))[:int(round(0.1 * len(train)))]  # train.py's split
    for arm, flows in (("refit", train), ("sched90", train.take(np.setdiff1d(np.arange(len(train)), held_out)))):
        t0 = time.perf_counter()
        model = netsynth.create(args.kind).fit(flows, seed=seed, epochs=epochs, min_steps=0, val_fraction=0.0)
        runs[arm] = model, time.perf_counter() - t0
    for arm, (model, seconds) in runs.items():
        synth = model.sample(train.present_counts(), seed=seed)
        a = audit(train, test, synth)
        print(f"{args.data} {args.kind} seed {seed} {arm:8s} {epochs} epochs, {seconds:.0f} s | "
              f"{quality_lines(train, test, synth)[0]} | copies of 4+ packets {100 * a['exact_copies_long']:.1f} % "
              f"(real {100 * a['exact_copies_long_base_rate']:.1f}), all {100 * a['exact_copies']:.1f} % "
              f"(real {100 * a['exact_copies_base_rate']:.1f}), closer to training {100 * a['dcr_closer_to_train']:.1f} %, "
              f"black-box AUC {a['black_box']['auc']:.3f}", flush=True)
