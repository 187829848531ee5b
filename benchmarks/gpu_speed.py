"""Where llama's and mamba's time goes on a GPU (issue #13): sampling and training rates, profiles, CUDA graphs.

    python benchmarks/gpu_speed.py --train train.parquet [--out DIR] [--device cpu]

For each of llama and mamba (paper sizes, trained 2 epochs on CUDA: speed, not quality):
- the sampler's distributions against the full-forward reference (`sampler_reference_error`), at batch 1,024 and
  at one flow per call;
- one flow per call and batches of 1,024, 32,768 and 131,072 flows (`--batches`), in float32 and bf16;
- one flow per call through `sample_tokens` with the decoder's steps replayed from CUDA graphs (the default on
  CUDA) and run eagerly (`fast_one_flow=False`), the reference, in each precision;
- torch.profiler tables of 10 calls of one flow and of one batch of 32,768 flows (DIR/KIND-one.txt, KIND-batch.txt);
- llama's large batches with its attention written out (the library's) and as einsum, batched products.
Then llama's training rate at batches of 256, 4,096 and 16,384 (`--train-batches`; empty: none) in float32 and
bf16, and compiled at 4,096 in bf16. `--device cpu` is a dry run (no graphs, no profiles of CUDA time).
"""
import argparse
import platform
import time
from pathlib import Path

import netsynth  # before torch: its OpenMP settings apply only then
import torch
from common import matmul_peak
from netsynth import precision
from netsynth.models.sequence import sample_tokens, sampler_reference_error

parser = argparse.ArgumentParser()
parser.add_argument("--train", required=True)
parser.add_argument("--out", default=".")
parser.add_argument("--device", default="cuda")
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--batches", default="1024,32768,131072")
parser.add_argument("--train-batches", default="256,4096,16384")
args = parser.parse_args()
device = torch.device(args.device)
cuda = device.type == "cuda"
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
train = netsynth.FlowSet.read(args.train)
sync = torch.cuda.synchronize if cuda else (lambda: None)
import transformers  # noqa: E402

name = torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine()
print(f"{name}; torch {torch.__version__}, transformers {transformers.__version__}; {len(train)} flows, "
      f"{len(train.classes)} classes; matmul peak {matmul_peak():.0f} GFLOP/s float32, "
      f"{matmul_peak(torch.bfloat16):.0f} bf16", flush=True)


def timed(fn, repeats: int = 1) -> tuple:
    fn()  # warm-up
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        result = fn()
    sync()
    return result, (time.perf_counter() - t0) / repeats


def per_class(n: int) -> dict:
    k = max(1, n // len(train.classes))
    return {c: k for c in train.classes}


def sampling_rates(model, kind: str) -> None:
    one = {model.classes_[0]: 1}
    for p in ("fp32", "bf16"):
        _, took = timed(lambda: model.sample(one, seed=0, precision=p, device=args.device), 30)
        line = f"{kind:6s} {p:9s} one flow per call {1000 * took:6.2f} ms"
        for batch in map(int, args.batches.split(",")):
            counts = per_class(batch)
            flows, took = timed(lambda: model.sample(counts, seed=0, precision=p, batch_size=batch, device=args.device))
            line += f" | batch {batch:6d}: {len(flows) / took:9.0f} flows/s"
        print(line, flush=True)


def profiles(model, kind: str) -> None:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    one, batch = {model.classes_[0]: 1}, per_class(32768)
    for label, fn in (("one", lambda: [model.sample(one, seed=s, device=args.device) for s in range(10)]),
                      ("batch", lambda: model.sample(batch, seed=0, batch_size=32768, device=args.device))):
        fn()
        with profile(activities=activities) as prof:
            fn()
            sync()
        table = prof.key_averages()
        text = table.table(sort_by="self_cpu_time_total", row_limit=40)
        if cuda:
            text += "\n" + table.table(sort_by="self_cuda_time_total", row_limit=25)
        (out / f"{kind}-{label}.txt").write_text(text)


def one_flow(model, kind: str) -> None:
    """ms per flow at one flow per call: the sampler's CUDA graphs (the default on CUDA) beside its eager steps."""
    codes = train.codes[:1]
    line = f"{kind:6s} one flow per call (sample_tokens):"
    for p in ("fp32", "bf16"):
        with precision.autocast(p, device):
            for graphs in (False, True) if cuda else (False,):
                run = lambda: [sample_tokens(model.module_, model.codec_, codes, seed=s, device=device,  # noqa: E731
                                             fast_one_flow=graphs) for s in range(50)]
                _, took = timed(run)
                line += f" {p} {'graphs' if graphs else 'eager'} {1000 * took / 50:.2f} ms"
    print(line, flush=True)


def attend_products(q, k, v):
    """LlamaDecoder._attend with the two contractions as einsum (batched products) instead of products and sums."""
    scores = torch.einsum("bkgd,tbkd->tbkg", q, k)
    weights = (scores - scores.amax(0)).exp_()
    weights /= weights.sum(0)
    return torch.einsum("tbkg,tbkd->bkgd", weights, v).flatten(1)


def attention_ab(model, kind: str) -> None:
    """Large batches with llama's attention written out (the library's) and as batched products."""
    from netsynth.models.decoding import LlamaDecoder

    written = LlamaDecoder._attend
    for label, attend in (("written out", written), ("einsum", attend_products)):
        LlamaDecoder._attend = staticmethod(attend)
        line = f"{kind:6s} attention {label:11s}"
        for p in ("fp32", "bf16"):
            for batch in list(map(int, args.batches.split(",")))[1:]:
                counts = per_class(batch)
                flows, took = timed(lambda: model.sample(counts, seed=0, precision=p, batch_size=batch,
                                                         device=args.device))
                line += f" | {p} batch {batch:6d}: {len(flows) / took:8.0f} flows/s"
        print(line, flush=True)
    LlamaDecoder._attend = written


for kind in ("llama", "mamba"):
    t0 = time.perf_counter()
    model = netsynth.create(kind).fit(train, epochs=args.epochs, min_steps=0, device=args.device)
    print(f"{kind}: trained {args.epochs} epochs in {time.perf_counter() - t0:.1f} s", flush=True)
    codes = train.codes[:1024]
    errors = [sampler_reference_error(model.module_, model.codec_, codes),
              sampler_reference_error(model.module_, model.codec_, codes[:16], batch_size=1)]
    with precision.autocast("bf16", device):
        errors.append(sampler_reference_error(model.module_, model.codec_, codes))
    print(f"{kind:6s} reference error fp32 batch 1024 {errors[0]:.1e}, batch 1 {errors[1]:.1e}; bf16 {errors[2]:.1e}",
          flush=True)
    sampling_rates(model, kind)
    for part in (one_flow, profiles) + ((attention_ab,) if kind == "llama" else ()):
        try:
            part(model, kind)
        except Exception as error:  # a failed experiment must not cost the rest of the run
            print(f"{kind}: {part.__name__} failed: {type(error).__name__}: {error}", flush=True)

kept = round(len(train) * 0.9)
for batch in [int(b) for b in args.train_batches.split(",") if b]:
    for p, compiled in (("fp32", False), ("bf16", False)) + ((("bf16", True),) if batch == 4096 else ()):
        try:
            model = netsynth.create("llama").fit(train, epochs=3, min_steps=0, batch_size=batch, precision=p,
                                                 device=args.device, compile=compiled)
        except Exception as error:
            print(f"llama training batch {batch} {p}: failed: {type(error).__name__}: {error}", flush=True)
            continue
        seconds = model.history_["seconds"]
        print(f"llama training batch {batch:6d} {p}{' compiled' if compiled else '         '}: epochs "
              f"{', '.join(f'{s:.2f}' for s in seconds)} s; {kept / min(seconds[1:]):9.0f} training flows/s "
              f"(best epoch); val loss {model.history_['val_loss'][-1]:.3f}", flush=True)
