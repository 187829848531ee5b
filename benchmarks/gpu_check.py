"""GPU check: every neural kind trained on CUDA, sampled, saved, reloaded and sampled again; speed; llama TSTR.

    python benchmarks/gpu_check.py [--epochs 3] [--train train.parquet --test test.parquet] [--device cpu] [--compile]

Without --train/--test it splits ../shared/data/iot-sentinel (FlowSet.split(test_size=0.2, seed=0)); on a lent
GPU machine, where ../shared does not travel, pass the two Parquet files of that split. `--device cpu` is a dry
run of the same script on a machine without a GPU.

What CUDA guarantees: the reloaded model has the same weights bit for bit (checked), so its next-token
distributions equal the original's (checked: each sampler against its full-forward reference). Flows are identical
for the same seed only where the kernels are deterministic: the script samples the original model twice and the
reloaded one once and prints the share of identical flows for each. `--deterministic` turns on PyTorch's
deterministic algorithms (slower), under which the same seed gives the same flows on CUDA too. `--compile` trains
llama through torch.compile (`netsynth train --compile`; its s/epoch then includes the compilation).
"""
import os
import argparse
import tempfile
import time

import torch

import netsynth
from netsynth import FlowSet
from netsynth.models.options import TrainSettings
from netsynth.models.sequence import sampler_reference_error
from netsynth.tasks.tstr import tstr

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--train")
parser.add_argument("--test")
parser.add_argument("--device", default="cuda")
parser.add_argument("--kinds", default="llama,mamba,diffusion,cvae")
parser.add_argument("--deterministic", action="store_true")
parser.add_argument("--compile", action="store_true")
args = parser.parse_args()
if args.deterministic:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's own condition for deterministic products
    torch.use_deterministic_algorithms(True)
if args.device == "cuda" and not torch.cuda.is_available():
    raise SystemExit("no CUDA GPU here (use --device cpu for a dry run)")
if args.train:
    train, test = FlowSet.read(args.train), FlowSet.read(args.test)
else:
    from common import iot_split
    train, test = iot_split()
import transformers  # noqa: E402

gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU"
print(f"{gpu}; torch {torch.__version__}, transformers {transformers.__version__}; "
      f"{len(train)} training flows, {len(test)} test flows, {len(train.classes)} classes, {args.epochs} epochs"
      f"{', deterministic algorithms' if args.deterministic else ''}{', llama compiled' if args.compile else ''}")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    if args.device == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def same_share(a, b) -> float:
    """The share of flows identical in label and every packet."""
    return float(((a.codes == b.codes) & (a.signed == b.signed).all(axis=1)).mean())


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


counts = train.class_counts()
for kind in args.kinds.split(","):
    compiled = {"compile": True} if args.compile and kind == "llama" else {}
    model, took = timed(lambda: netsynth.create(kind).fit(train, epochs=args.epochs, device=args.device, **compiled))
    epochs = len(model.history_["epochs"])
    trained = epochs * round(len(train) * (1 - TrainSettings().val_fraction))
    synth = model.sample(counts, seed=0, device=args.device)
    with tempfile.TemporaryDirectory() as folder:
        again = netsynth.load(model.save(folder))
    repeat = model.sample(counts, seed=0, device=args.device)
    reloaded = again.sample(counts, seed=0, device=args.device)
    line = (f"{kind:9s} {took / epochs:6.1f} s/epoch  {trained / took:8.0f} training flows/s  "
            f"same seed: {100 * same_share(synth, repeat):.1f} % identical flows sampled twice, "
            f"{100 * same_share(synth, reloaded):.1f} % after reload (weights equal: "
            f"{same_weights(model.module_, again.module_)})")
    if hasattr(model, "codec_"):
        codes = synth.codes[:2048]
        line += (f", reference error original {sampler_reference_error(model.module_, model.codec_, codes):.1e}"
                 f" reloaded {sampler_reference_error(again.module_, again.codec_, codes):.1e}")
        for batch in (1024, 32768):
            per = {c: max(1, 4 * batch // len(train.classes)) for c in train.classes}
            model.sample(per, seed=1, batch_size=batch, device=args.device)  # warm-up
            flows, took = timed(lambda: model.sample(per, seed=0, batch_size=batch, device=args.device))
            line += f"\n{'':9s} generation at batch {batch:6d}: {len(flows) / took:9.0f} flows/s"
    print(line, flush=True)
    if kind == "llama":
        f1 = tstr(train, test, synth, seed=0)
        print(f"{'':9s} TSTR macro F1 {100 * f1['train_on_synthetic']:.1f} % (train on real {100 * f1['train_on_real']:.1f} %); "
              f"mean length {synth.length.mean():.2f} (real {train.length.mean():.2f})", flush=True)
