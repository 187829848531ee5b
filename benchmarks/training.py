"""Training speed: flows per second of netsynth's training loop beside bare PyTorch loops, same process.

    python benchmarks/training.py [--epochs 3] [--train train.parquet] [--cpu-isa avx2]

References, each the plainest loop (forward, backward, AdamW step) over the same llama module, data and batch
size (256), float32:
- "transformers loss": the module's own loss (`labels=`, <PAD> ignored), what a user of transformers writes;
- "netsynth loss": netsynth's loss (the output layer only where there is a token to predict), so that the ratio
  shows what the loop adds (Accelerate, validation, checkpoints, schedule).
netsynth's loop runs llama in float32 and in bf16 (--precision bf16), each also through torch.compile (--compile;
the compilation's epoch timed apart); mamba, cvae and diffusion at their paper sizes in float32. Each llama row
also gives its matmul work as a share of the machine's measured matmul peak. Every loop, bare or not, runs
`--epochs` epochs and is timed by its median epoch (one epoch of a loop varied by up to 17 % between runs).

`--cpu-isa avx2` caps the vector instructions that torch's kernels, oneDNN, MKL and inductor's generated code use
to AVX2 (their environment variables, set before torch is loaded): a CPU without AVX512 and without bf16 units,
emulated on this one (same cores, caches and clock), where bf16 matmuls are emulated too and the bf16 rows are
left out.
"""
import argparse
import os
import platform
import statistics
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--train", help="a FlowSet to train on instead of the IoT Sentinel training split")
parser.add_argument("--cpu-isa", choices=["native", "avx2"], default="native",
                    help="avx2: cap torch, oneDNN, MKL and inductor to AVX2 (a CPU without bf16 units, emulated)")
args = parser.parse_args()
if args.cpu_isa == "avx2":
    os.environ.update(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2", MKL_ENABLE_INSTRUCTIONS="AVX2")
# the compiled rows time a first compilation, as a user's first run has it, not a hit in inductor's cache on disk
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="netsynth-inductor-"))
import netsynth  # before torch: its OpenMP settings (netsynth/__init__.py) apply only then, as in the CLI
import torch
from common import iot_train, matmul_flops_per_token, matmul_peak, prepared
from netsynth.precision import bf16_speedup, resolve
from netsynth.codecs.tokens import PAD

train = netsynth.FlowSet.read(args.train) if args.train else iot_train()
n_train = int(round(len(train) * 0.9))  # the loop holds 10 % out for validation
peak = {p: matmul_peak(dtype) for p, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
bf16_runs = bf16_speedup() >= 1  # else emulated: an epoch would take hours
print(f"{platform.processor() or platform.machine()} ({torch.backends.cpu.get_cpu_capability()}), torch threads "
      f"{torch.get_num_threads()}; matmul peak {peak['fp32']:.0f} GFLOP/s float32, {peak['bf16']:.0f} bf16; precision "
      f"auto: {resolve('auto', torch.device('cpu'))}; {len(train)} flows ({n_train} trained per epoch), "
      f"batch 256, median of {args.epochs} epochs")

model = prepared("llama", train)
ids = torch.from_numpy(model.codec_.encode(train))[:n_train]


head = model._build().get_output_embeddings().weight.numel()
body = matmul_flops_per_token(model._build()) // 2 - head  # the weights of every Linear layer but the output one
EPOCH_FLOP = 3 * 2 * (body * ids.numel() + head * int((ids[:, 1:] != PAD).sum()))


def llama_gflop(seconds: float) -> float:
    """Training matmul work of one epoch (3 x the forward pass: forward, and backward for inputs and weights) in
    GFLOP/s: every position through the layers, the output layer at the positions with a token to predict."""
    return EPOCH_FLOP / seconds / 1e9


def bare_loop(loss_of) -> float:
    """Flows per second of the loop's median epoch."""
    torch.manual_seed(0)
    module = model._build().train()
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    seconds = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        for i in range(0, len(ids), 256):
            loss = loss_of(module, ids[i:i + 256])
            opt.zero_grad()
            loss.backward()
            opt.step()
        seconds.append(time.perf_counter() - t0)
    return n_train / statistics.median(seconds)


def transformers_loss(module, batch):
    return module(input_ids=batch, labels=batch.masked_fill(batch == PAD, -100)).loss


bare = {"transformers loss": bare_loop(transformers_loss), "netsynth loss": bare_loop(model._loss)}
for name, rate in bare.items():
    seconds = n_train / rate
    print(f"llama bare PyTorch loop, {name:17s} {rate:6.0f} flows/s  {seconds:5.1f} s/epoch")

RUNS = (("llama", "fp32", False), ("llama", "bf16", False), ("llama", "fp32", True), ("llama", "bf16", True),
        ("mamba", "fp32", False), ("cvae", "fp32", False), ("diffusion", "fp32", False))
for kind, precision, compiled in RUNS:
    if precision == "bf16" and not bf16_runs:
        print(f"{kind:9s} bf16{' compiled' if compiled else ''}  left out: bf16 is emulated here "
              f"({bf16_speedup():.3f}x the float32 matmul rate)")
        continue
    with tempfile.TemporaryDirectory() as ckpt:
        # compiled: one more epoch, whose time (the compilation's) is reported apart
        trained = netsynth.create(kind).fit(train, epochs=args.epochs + compiled, batch_size=256, patience=99,
                                            checkpoint_dir=ckpt, precision=precision, **({"compile": True} if compiled else {}))
    seconds = trained.history_["seconds"][1:] if compiled else trained.history_["seconds"]
    per_epoch = statistics.median(seconds)
    line = (f"{kind:9s} {precision}{' compiled' if compiled else ''}  {n_train / per_epoch:7.0f} flows/s  "
            f"{per_epoch:6.1f} s/epoch  {trained.n_parameters:,} parameters")
    if compiled:
        line += f"  (first epoch {trained.history_['seconds'][0] - per_epoch:+.0f} s: compilation)"
    if kind == "llama":
        work = llama_gflop(per_epoch)
        line += (f"  {work:.0f} GFLOP/s = {100 * work / peak[precision]:.0f} % of the {precision} peak | / bare loop: "
                 + ", ".join(f"{n_train / per_epoch / rate:.2f}x ({name})" for name, rate in bare.items()))
    print(line)
