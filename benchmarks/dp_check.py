"""DP training on a device: llama, mamba and cvae trained with DP-SGD for a few epochs on the IoT Sentinel
training split; the spent epsilon beside the budget and beside Opacus's accountant recomputed from the noise,
sampling rate and steps; TSTR of the synthetic flows beside train-on-real.

    python benchmarks/dp_check.py --train train.parquet --test test.parquet [--epsilon 4 --epochs 3 --device cuda]
"""
import argparse
import time

from opacus.accountants import RDPAccountant

import netsynth
from netsynth import FlowSet
from netsynth.tasks.tstr import tstr

parser = argparse.ArgumentParser()
parser.add_argument("--train", required=True)
parser.add_argument("--test", required=True)
parser.add_argument("--epsilon", type=float, default=4.0)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--device", default="auto")
parser.add_argument("--kinds", default="cvae,llama,mamba")
args = parser.parse_args()
train, test = FlowSet.read(args.train), FlowSet.read(args.test)
for kind in args.kinds.split(","):
    start = time.perf_counter()
    model = netsynth.create(kind).fit(train, epochs=args.epochs, dp_epsilon=args.epsilon, device=args.device)
    took = time.perf_counter() - start
    dp = model.privacy_
    accountant = RDPAccountant()
    accountant.history = [(dp["noise_multiplier"], dp["sample_rate"], dp["steps"])]
    f1 = tstr(train, test, model.sample(train.class_counts(), seed=0, device=args.device), seed=0)
    print(f"{kind:6s} {took / args.epochs:6.1f} s/epoch  epsilon spent {dp['epsilon']:.4f} of {args.epsilon:g} (accountant "
          f"afresh {accountant.get_epsilon(dp['delta']):.4f}), noise {dp['noise_multiplier']:.3f}, {dp['steps']} steps; "
          f"TSTR {100 * f1['train_on_synthetic']:.1f} % (real {100 * f1['train_on_real']:.1f} %)", flush=True)
