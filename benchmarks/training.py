"""Training speed: flows per second of netsynth's training loop beside bare PyTorch loops, same process.

    python benchmarks/training.py [--epochs 1] [--train train.parquet]

References, each the plainest loop (forward, backward, AdamW step) over the same llama module, data and batch
size (256), float32:
- "transformers loss": the module's own loss (`labels=`, <PAD> ignored), what a user of transformers writes;
- "netsynth loss": netsynth's loss (the output layer only where there is a token to predict), so that the ratio
  shows what the loop adds (Accelerate, validation, checkpoints, schedule).
netsynth's loop runs llama in float32 and in bf16 (--precision bf16), each also through torch.compile (--compile;
the compilation's epoch timed apart); mamba, cvae and diffusion at their paper sizes in float32. Each llama row
also gives its matmul work as a share of the machine's measured matmul peak.
"""
import argparse
import os
import platform
import tempfile
import time

# the compiled rows time a first compilation, as a user's first run has it, not a hit in inductor's cache on disk
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="netsynth-inductor-"))
import netsynth  # before torch: its OpenMP settings (netsynth/__init__.py) apply only then, as in the CLI
import torch
from common import iot_train, matmul_flops_per_token, matmul_peak, prepared
from netsynth.codecs.tokens import PAD

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--train", help="a FlowSet to train on instead of the IoT Sentinel training split")
args = parser.parse_args()
train = netsynth.FlowSet.read(args.train) if args.train else iot_train()
n_train = int(round(len(train) * 0.9))  # the loop holds 10 % out for validation
peak = {p: matmul_peak(dtype) for p, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
print(f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}; matmul peak "
      f"{peak['fp32']:.0f} GFLOP/s float32, {peak['bf16']:.0f} bf16; {len(train)} flows ({n_train} trained per "
      "epoch), batch 256")

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
    torch.manual_seed(0)
    module = model._build().train()
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    for i in range(0, len(ids), 256):
        loss = loss_of(module, ids[i:i + 256])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return n_train / (time.perf_counter() - t0)


def transformers_loss(module, batch):
    return module(input_ids=batch, labels=batch.masked_fill(batch == PAD, -100)).loss


bare = {"transformers loss": bare_loop(transformers_loss), "netsynth loss": bare_loop(model._loss)}
for name, rate in bare.items():
    seconds = n_train / rate
    print(f"llama bare PyTorch loop, {name:17s} {rate:6.0f} flows/s  {seconds:5.1f} s/epoch")

RUNS = (("llama", "fp32", False), ("llama", "bf16", False), ("llama", "fp32", True), ("llama", "bf16", True),
        ("mamba", "fp32", False), ("cvae", "fp32", False), ("diffusion", "fp32", False))
for kind, precision, compiled in RUNS:
    with tempfile.TemporaryDirectory() as ckpt:
        # compiled: one more epoch, whose time (the compilation's) is reported apart
        trained = netsynth.create(kind).fit(train, epochs=args.epochs + compiled, batch_size=256, patience=99,
                                            checkpoint_dir=ckpt, precision=precision, **({"compile": True} if compiled else {}))
    seconds = trained.history_["seconds"][1:] if compiled else trained.history_["seconds"]
    per_epoch = sum(seconds) / len(seconds)
    line = (f"{kind:9s} {precision}{' compiled' if compiled else ''}  {n_train / per_epoch:7.0f} flows/s  "
            f"{per_epoch:6.1f} s/epoch  {trained.n_parameters:,} parameters")
    if compiled:
        line += f"  (first epoch {trained.history_['seconds'][0] - per_epoch:+.0f} s: compilation)"
    if kind == "llama":
        work = llama_gflop(per_epoch)
        line += (f"  {work:.0f} GFLOP/s = {100 * work / peak[precision]:.0f} % of the {precision} peak | / bare loop: "
                 + ", ".join(f"{n_train / per_epoch / rate:.2f}x ({name})" for name, rate in bare.items()))
    print(line)
