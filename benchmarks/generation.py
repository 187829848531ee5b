"""Generation speed: netsynth's samplers beside the usual reference, in the same process.

    python benchmarks/generation.py [--epochs 2] [--flows 4096] [--train train.parquet]

- llama and mamba (paper sizes, trained briefly on IoT Sentinel so that flows end at <EOS> as they do in
  use): netsynth's step decoder with inverse-CDF sampling, in float32 and in bf16, vs transformers
  `generate()` (sampling, same batch of 1024, same maximum length), in flows per second; the matmul work
  this reaches as a share of the machine's measured matmul peak; one flow per call in each precision, in ms, and what
  precision auto chooses on this machine; one flow per call in float32 through the NumPy decoder (the default on a
  CPU) beside the torch decoder (`fast_one_flow=False`), its reference, both through `sample_tokens`.
- diffusion (NetDiffus-NR): DPM-Solver++ with the default 20 steps vs DDIM with 50 steps, in ms per flow.
"""
import argparse
import platform
import time

import numpy as np

import netsynth  # before torch: its OpenMP settings (netsynth/__init__.py) apply only then, as in the CLI
import torch
from common import iot_train, matmul_flops_per_token, matmul_peak
from netsynth.codecs.tokens import EOS, PAD
from netsynth.models.sequence import sample_tokens
from netsynth.train import resolve_device

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--flows", type=int, default=4096)
parser.add_argument("--train", help="a FlowSet to train on instead of the IoT Sentinel training split")
args = parser.parse_args()
train = netsynth.FlowSet.read(args.train) if args.train else iot_train()
peak = {p: matmul_peak(dtype) for p, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
print(f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}; matmul peak "
      f"{peak['fp32']:.0f} GFLOP/s float32, {peak['bf16']:.0f} bf16; {args.flows} flows, batch 1024")


def per_class(n):
    k = max(1, n // len(train.classes))
    return {c: k for c in train.classes}


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


for kind in ("llama", "mamba"):
    # mamba without its class at every step: the cached steps of generate() see one token, not the class, so the
    # reference would draw other flows (of other lengths) than the model's
    model = netsynth.create(kind, **({"class_every_step": False} if kind == "mamba" else {})).fit(train, epochs=args.epochs)
    counts = per_class(args.flows)
    model.sample(per_class(1024), seed=0)  # warm-up
    rates = {}
    for p in ("fp32", "bf16"):
        flows, took = timed(lambda: model.sample(counts, seed=0, precision=p))
        steps = np.minimum(flows.length + 1, model.n_packets_).sum()  # one decoder step per token drawn
        gflops = steps * matmul_flops_per_token(model.module_) / took / 1e9
        rates[p] = len(flows) / took
        print(f"{kind:9s} netsynth sampler {p}  {rates[p]:7.0f} flows/s ({1000 * took / len(flows):.2f} ms/flow), "
              f"{gflops:5.1f} GFLOP/s = {100 * gflops / peak[p]:.0f} % of the {p} matmul peak")
    codes = np.repeat(np.arange(len(model.classes_)), list(counts.values()))
    prompts = torch.from_numpy(model.codec_.class_token(codes))[:, None]

    def reference():
        with torch.inference_mode():
            for i in range(0, len(prompts), 1024):
                model.module_.generate(prompts[i:i + 1024], max_new_tokens=model.n_packets_ + 1, do_sample=True,
                                       eos_token_id=EOS, pad_token_id=PAD)
    _, ref = timed(reference)
    print(f"{kind:9s} transformers generate() {len(codes) / ref:7.0f} flows/s | netsynth fp32 / generate() "
          f"{rates['fp32'] * ref / len(codes):.2f}x, bf16 / generate() {rates['bf16'] * ref / len(codes):.2f}x")
    one, per_call = {model.classes_[0]: 1}, {}
    for p in ("fp32", "bf16"):
        model.sample(one, seed=0, precision=p)
        _, took = timed(lambda: [model.sample(one, seed=s, precision=p) for s in range(50)])
        per_call[p] = f"{p} {1000 * took / 50:.2f} ms"
    ms = {}
    for _ in range(3):  # alternated rounds, medians
        for fast in (True, False):
            _, took = timed(lambda: [sample_tokens(model.module_, model.codec_, np.array([0]), seed=s,
                                                   fast_one_flow=fast) for s in range(50)])
            ms.setdefault(fast, []).append(1000 * took / 50)
    print(f"{kind:9s} one flow per call in sample_tokens, fp32: NumPy decoder {np.median(ms[True]):.2f} ms, torch "
          f"decoder {np.median(ms[False]):.2f} ms ({np.median(ms[False]) / np.median(ms[True]):.2f}x)")
    auto = [model.sampling_precision("auto", resolve_device("auto"), n) for n in (1, 1024)]
    print(f"{kind:9s} one flow per call {', '.join(per_call.values())}; precision auto here: {auto[0]} for one flow, "
          f"{auto[1]} for 1,024 "
          "(paper, on its GPU: llama 31.2, mamba 148.5)")

model = netsynth.create("diffusion").fit(train, epochs=args.epochs)
n = 1024
counts = per_class(n)
for label, steps, sampler in (("DPM-Solver++ 20 steps (default)", 20, "dpm-solver++"), ("DDIM 50 steps (reference)", 50, "ddim")):
    t0 = time.perf_counter()
    flows = model.sample(counts, seed=0, steps=steps, sampler=sampler)
    took = time.perf_counter() - t0
    print(f"diffusion {label:32s} {1000 * took / len(flows):6.2f} ms/flow")
