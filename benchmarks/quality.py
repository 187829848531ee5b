"""One generator's quality on a split: TSTR beside train on real, class fidelity, the six metrics beside the floor.

    python benchmarks/quality.py KIND [--data flows.parquet] [--epochs E --lr LR --batch-size B --patience P --weight-decay WD]
        [--seed S] [--precision auto|fp32|bf16] [--set key=value ...] [--no-snap] [--ema]

Without --data it splits ../shared/data/iot-sentinel (FlowSet.split(test_size=0.2, seed=0)); with --data,
that FlowSet the same way. Synthetic flows: the training split's class counts, seed S (default 0, also the training seed). `--no-snap` also
scores NetDiffus-NR's flows without the snapping to its class's lengths (the same trained model).
"""
import argparse
import time

import netsynth
from common import iot_split, quality_lines
from netsynth import FlowSet
from netsynth.cli import parse_settings
from netsynth.metrics import real_floor

parser = argparse.ArgumentParser()
parser.add_argument("kind")
parser.add_argument("--data")
parser.add_argument("--epochs", type=int)
parser.add_argument("--lr", type=float)
parser.add_argument("--batch-size", type=int)
parser.add_argument("--patience", type=int)
parser.add_argument("--weight-decay", type=float)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--precision")
parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
parser.add_argument("--no-snap", action="store_true")
parser.add_argument("--ema", action="store_true", help="train with an average of the weights (netsynth train --ema)")
args = parser.parse_args()
if args.no_snap and args.kind != "diffusion":
    parser.error("--no-snap applies to diffusion")
train, test = FlowSet.read(args.data).split(test_size=0.2, seed=0) if args.data else iot_split()
settings = parse_settings(args.sets)
t0 = time.perf_counter()
model = netsynth.create(args.kind, **settings).fit(train, epochs=args.epochs, lr=args.lr,
                                                         batch_size=args.batch_size, patience=args.patience,
                                                         weight_decay=args.weight_decay,
                                                         seed=args.seed, precision=args.precision, ema=args.ema or None)
history = getattr(model, "history_", {})
print(f"{args.kind} {settings or ''} on {args.data or 'IoT Sentinel'}: trained in {time.perf_counter() - t0:.0f} s"
      + (f", {len(history['epochs'])} epochs, best validation loss {history['best_val_loss']:.4f}, precision "
         f"{history['precision']}, seed {args.seed}" if history else ""))
floor = real_floor(test, train)["macro"]
print("  floor      " + "  ".join(f"{k} {v:.3f}" for k, v in floor.items()))
for label in ("as sampled", "without snapping") if args.no_snap else ("as sampled",):
    synth = model.sample(train.present_counts(), seed=args.seed, precision=args.precision)
    scores, metrics = quality_lines(train, test, synth)
    print(f"  {label}: {scores}")
    print(f"  synthetic  {metrics}")
    model.values_ = None  # NetDiffus-NR without its refinement
if "kl_per_latent_dim" in history:
    print("  KL per latent dimension " + " ".join(f"{k:.2f}" for k in history["kl_per_latent_dim"]))
