"""The one training loop of the neural generators.

Hugging Face Accelerate places the model and batches (CUDA when there is one, else the CPU with all its
cores) and is what lets `accelerate launch` spread the same code over several GPUs or nodes. AdamW with a
linear warm-up and cosine decay, a validation split with early stopping (the best weights are kept), a
checkpoint after every epoch that `resume=True` continues from, and a fixed seed that gives the same model.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from netsynth.errors import NetsynthError
from netsynth.fileio import atomic_path
from netsynth.machine import usable_cores
from netsynth.models.options import TrainSettings

CHECKPOINT = "checkpoint"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise NetsynthError("--device cuda: no CUDA GPU is available here (use --device auto or cpu)")
    if name not in ("cpu", "cuda"):
        raise NetsynthError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def is_main_process() -> bool:
    """False in every process but the first of a distributed launch (torchrun and accelerate launch set RANK).
    Read from the environment: asking Accelerate here would fix its process state before the training loop
    creates the Accelerator with the right device."""
    return int(os.environ.get("RANK", "0")) == 0


def use_all_cores():
    torch.set_num_threads(usable_cores())


def fit_module(module: torch.nn.Module, loss_fn: Callable, tensors: tuple[torch.Tensor, ...], settings: TrainSettings,
               checkpoint_dir: str | os.PathLike | None = None, resume: bool = False, log: Callable[[str], None] | None = None,
               ) -> dict:
    """Train `module` in place on `tensors` (first dimension = examples); returns a history dict.

    loss_fn(module, *batch) -> scalar loss. Ends with the weights of the best validation epoch.
    """
    from accelerate import Accelerator

    device = resolve_device(settings.device)
    use_all_cores()
    accelerator = Accelerator(cpu=device.type == "cpu")
    if log is None or not accelerator.is_main_process:
        log = lambda msg: None  # noqa: E731
    n = len(tensors[0])
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(n)
    n_val = int(round(n * settings.val_fraction)) if n >= 20 else 0
    val_idx, train_idx = order[:n_val], order[n_val:]
    train_set = torch.utils.data.TensorDataset(*(t[train_idx] for t in tensors))
    val = tuple(t[val_idx] for t in tensors)
    loader = torch.utils.data.DataLoader(train_set, batch_size=settings.batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(settings.seed))
    optimizer = torch.optim.AdamW(module.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    total_steps = max(1, settings.epochs * len(loader))
    warmup = max(1, int(settings.warmup_fraction * total_steps))

    def lr_at(step):
        if step < warmup:
            return settings.lr * (step + 1) / warmup
        return settings.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    history = {"epochs": [], "train_loss": [], "val_loss": [], "seconds": []}
    start_epoch, best, best_state, since_best = 0, math.inf, None, 0
    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir else None
    if resume:
        if ckpt is None or not (ckpt / "state.json").is_file():
            raise NetsynthError(f"--resume: no checkpoint in {checkpoint_dir}")
        state = json.loads((ckpt / "state.json").read_text())
        module.load_state_dict(load_file(str(ckpt / "model.safetensors")))
        best_state = load_file(str(ckpt / "best.safetensors"))
        _load_optimizer(optimizer, load_file(str(ckpt / "optimizer.safetensors")))
        start_epoch, best, since_best, history = state["epoch"] + 1, state["best"], state["since_best"], state["history"]
        loader.generator.manual_seed(settings.seed + start_epoch)
        log(f"resumed after epoch {start_epoch} (best validation loss {best:.4f})")

    # the loss is computed inside the prepared module's forward, so that a distributed wrapper sees it
    inner = module
    module, optimizer, loader = accelerator.prepare(WithLoss(inner, loss_fn), optimizer, loader)
    step = start_epoch * len(loader)
    for epoch in range(start_epoch, settings.epochs):
        if since_best >= settings.patience:
            break
        t0 = time.perf_counter()
        module.train()
        total, count = 0.0, 0
        with EpochBar(f"epoch {epoch + 1}/{settings.epochs}", len(loader)) as bar:
            for batch in loader:
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step)
                loss = module(*batch)
                optimizer.zero_grad(set_to_none=True)
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(module.parameters(), 1.0)
                optimizer.step()
                step += 1
                total += loss.item() * len(batch[0])
                count += len(batch[0])
                bar.advance(total / count)
        train_loss = total / max(1, count)
        val_loss = _evaluate(module, val, settings.batch_size, accelerator.device) if n_val else train_loss
        seconds = time.perf_counter() - t0
        for key, value in zip(history, (epoch + 1, train_loss, val_loss, seconds)):
            history[key].append(value)
        if val_loss < best - 1e-6:
            best, since_best = val_loss, 0
            best_state = {k: v.detach().cpu().clone() for k, v in inner.state_dict().items()}
        else:
            since_best += 1
        log(f"epoch {epoch + 1}/{settings.epochs}  train loss {train_loss:.4f}  val loss {val_loss:.4f}  {seconds:.1f} s"
            + ("  (best)" if since_best == 0 else ""))
        if ckpt is not None and accelerator.is_main_process:
            _save_checkpoint(ckpt, inner, best_state, optimizer,
                             {"epoch": epoch, "best": best, "since_best": since_best, "history": history})
        if not math.isfinite(train_loss):
            raise NetsynthError(f"training diverged at epoch {epoch + 1} (loss {train_loss}); lower --lr")
    if best_state is not None:
        inner.load_state_dict(best_state)
    inner.eval()
    history["best_val_loss"] = best
    return history


class WithLoss(torch.nn.Module):
    """A model and its loss as one module whose forward returns the loss."""

    def __init__(self, model: torch.nn.Module, loss_fn: Callable):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, *batch):
        return self.loss_fn(self.model, *batch)


@torch.no_grad()
def _evaluate(module, tensors, batch_size, device) -> float:
    module.eval()
    total = 0.0
    n = len(tensors[0])
    for i in range(0, n, batch_size):
        batch = [t[i:i + batch_size].to(device) for t in tensors]
        total += module(*batch).item() * len(batch[0])
    return total / n


class EpochBar:
    """A progress bar with the running loss, on a terminal only (logs get one line per epoch instead)."""

    def __init__(self, description: str, total: int):
        self.description, self.total, self.progress = description, total, None

    def __enter__(self):
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=self.total)
        return self

    def advance(self, loss: float):
        if self.progress:
            self.progress.update(self.task, advance=1, description=f"{self.description} loss {loss:.4f}")

    def __exit__(self, *exc):
        if self.progress:
            self.progress.stop()


def _save_checkpoint(ckpt: Path, module, best_state, optimizer, state: dict):
    """Each file is replaced whole; state.json last, so it only ever names a complete checkpoint."""
    ckpt.mkdir(parents=True, exist_ok=True)
    files = {"model.safetensors": {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()},
             "best.safetensors": {k: v.contiguous() for k, v in best_state.items()},
             "optimizer.safetensors": _flatten_optimizer(optimizer)}
    for name, tensors in files.items():
        with atomic_path(ckpt / name) as tmp:
            save_file(tensors, str(tmp))
    with atomic_path(ckpt / "state.json") as tmp:
        tmp.write_text(json.dumps(state))


def _flatten_optimizer(optimizer) -> dict[str, torch.Tensor]:
    flat = {}
    for pid, entry in optimizer.state_dict()["state"].items():
        for key, value in entry.items():
            flat[f"{pid}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    return flat


def _load_optimizer(optimizer, flat: dict[str, torch.Tensor]):
    state: dict[int, dict] = {}
    for name, value in flat.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
