"""The one training loop of the neural generators.

Hugging Face Accelerate places the model and batches (CUDA when there is one, else the CPU with all its
cores) and is what lets `accelerate launch` spread the same code over several GPUs or nodes. AdamW with a
linear warm-up and cosine decay, a validation split with early stopping (the best weights are kept) that ends
with a cool-down, a checkpoint after every epoch that `resume=True` continues from, and a fixed seed that gives
the same model.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from netsynth.errors import NetsynthError
from netsynth.fileio import atomic_path
from netsynth.machine import usable_cores
from netsynth.models.options import TrainSettings
from netsynth.precision import autocast

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
               progress: bool | None = None) -> dict:
    """Train `module` in place on `tensors` (first dimension = examples); returns a history dict.

    loss_fn(module, *batch) -> scalar loss. Ends with the weights of the best validation epoch.
    """
    return Trainer(module, loss_fn, settings, checkpoint_dir, log, progress).fit(tensors, resume)


def _accelerator(device: torch.device):
    """An Accelerator on `device`. Accelerate keeps one device per process from its first Accelerator on: a process
    that trained on the GPU and then asked for the CPU got a ValueError (seen on an H200), and one that trained on the
    CPU first would train there again when asked for the GPU (its state, once made, is kept). Outside a distributed
    launch (which fixes each process's device) the state is reset, so that every fit trains where it was asked to."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(cpu=device.type == "cpu")


class WholeBatches(torch.utils.data.TensorDataset):
    """A TensorDataset that the DataLoader reads a batch at a time (its __getitems__): one indexing per tensor,
    where reading flow by flow and stacking them costs Python calls per flow. On a 2-core CPU an epoch of IoT
    Sentinel's token ids at batch 4,096 took 17.5 ms flow by flow and 1.9 ms whole (benchmarks/loader.py): nothing
    beside a CPU's training step, but at that reading speed a sixth of an epoch at the 100,000 flows/s llama trained
    at on an H200. The same batches in the same order."""

    def __getitems__(self, index: list[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(index)
        return tuple(t[index] for t in self.tensors)


def _as_read(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The DataLoader's collate_fn for WholeBatches, whose batches come whole."""
    return batch


class Trainer:
    """The loop in parts that read one at a time: the validation split, the learning-rate schedule, one epoch,
    early stopping on the validation loss (the best weights are kept), and the checkpoint after every epoch."""

    def __init__(self, module, loss_fn, settings: TrainSettings, checkpoint_dir=None, log=None, progress=None):
        self.module, self.settings = module, settings
        use_all_cores()
        self.accelerator = _accelerator(resolve_device(settings.device))
        quiet = log is None or not self.accelerator.is_main_process
        self.log = (lambda msg: None) if quiet else log
        self.progress = self.accelerator.is_main_process and (sys.stderr.isatty() if progress is None else progress)
        self.loss_module = WithLoss(module, loss_fn, settings.precision)
        self.ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir else None
        self.history = {"epochs": [], "train_loss": [], "val_loss": [], "seconds": []}
        self.best, self.best_state, self.since_best, self.start_epoch = math.inf, None, 0, 0
        self.cooldown: tuple[int, int] | None = None  # (first epoch, epochs) of the cool-down, once begun
        self.ema: WeightAverage | None = None  # with settings.ema
        self.saved_at, self.saved_epoch = time.monotonic(), None

    def split(self, tensors):
        """A seeded validation hold-out (none below 20 examples) and a shuffling loader over the rest."""
        s, n = self.settings, len(tensors[0])
        order = np.random.default_rng(s.seed).permutation(n)
        n_val = int(round(n * s.val_fraction)) if n >= 20 else 0
        train = WholeBatches(*(t[order[n_val:]] for t in tensors))
        self.generator = torch.Generator().manual_seed(s.seed)  # the data order; its state is checkpointed
        loader = torch.utils.data.DataLoader(train, batch_size=s.batch_size, shuffle=True, generator=self.generator,
                                             collate_fn=_as_read)
        return loader, tuple(t[order[:n_val]] for t in tensors)

    def schedule(self, optimizer, steps_per_epoch: int, epochs: int):
        """Linear warm-up from lr / warmup (not from 0, as transformers' get_cosine_schedule_with_warmup does:
        the first step is not wasted), then cosine decay to 0, over every step of every epoch; once a cool-down
        has begun, a linear decay from the rate it began at to 0 over its epochs instead."""
        s = self.settings
        total = max(1, epochs * steps_per_epoch)
        warmup = max(1, int(s.warmup_fraction * total))
        first = self.start_epoch * steps_per_epoch

        def cosine(step):
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

        def factor(step):
            step += first
            if self.cooldown is None:
                return cosine(step)
            start, length = (n * steps_per_epoch for n in self.cooldown)
            return cosine(start) * max(0.0, 1 - (step - start) / length)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def stop_or_cool_down(self, epoch: int, epochs: int, patience: int) -> bool:
        """Whether training ends before `epoch`. When the validation loss has not improved for `patience` epochs,
        the learning rate is often still far from the end of its cosine, and a plateau at a high rate is not the
        loss the model can reach: training goes back to the best weights and decays the rate linearly to 0 over
        a fifth of the epochs run so far (at least one), then ends: the cool-down of warmup-stable-decay schedules
        (Hu et al. 2024, MiniCPM), which Hägele et al. 2024 found to match a full cosine; the fifth is not tuned
        here. The best weights of the whole run are kept. A cool-down that would reach the epoch cap is the
        cosine's own end."""
        if self.cooldown is not None:
            return epoch >= sum(self.cooldown)
        if self.since_best < patience:
            return False
        if self.best_state is None:  # no finite validation loss yet
            return True
        length = math.ceil(0.2 * epoch)
        if epoch + length >= epochs:
            return True
        self.cooldown = (epoch, length)
        self.module.load_state_dict(self.best_state)
        if self.ema is not None:  # the best weights are an average already: the cool-down averages its own steps
            self.ema = WeightAverage(self.module.parameters())
        self.log(f"no better validation loss for {self.since_best} epochs: back to the best weights, and the learning "
                 f"rate decays to 0 over {length} epochs")
        return False

    def epoch(self, module, loader, optimizer, scheduler, title: str) -> float:
        module.train()
        total, count = 0.0, 0
        with EpochBar(title, len(loader), self.progress) as bar:
            for batch in loader:
                loss = module(*batch)
                optimizer.zero_grad(set_to_none=True)
                self.accelerator.backward(loss)
                self.accelerator.clip_grad_norm_(module.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                if self.ema is not None:
                    self.ema.step(self.module.parameters())
                total += loss.item() * len(batch[0])
                count += len(batch[0])
                bar.advance(total / count)
        return total / max(1, count)

    def compiled(self) -> torch.nn.Module:
        """The loss module through torch.compile (inductor): the elementwise work between the products (norms,
        rotary embedding, activations, bf16 casts) fused into fewer kernels. The model's own weights and state_dict
        are untouched; the wrapper shares them. The first epoch pays the compilation, and the first validation
        pass a second one (gradients off)."""
        self.log("compiling the loss (torch.compile): the first epoch includes the compilation")
        return Compiled(self.loss_module)

    @contextlib.contextmanager
    def averaged(self):
        """The module holds the averaged weights inside (with settings.ema), its own after."""
        if self.ema is None:
            yield
            return
        params = list(self.module.parameters())
        own = [p.detach().clone() for p in params]
        self.ema.copy_to(params)
        try:
            yield
        finally:
            with torch.no_grad():
                for param, weights in zip(params, own):
                    param.copy_(weights)

    def improved(self, val_loss: float) -> bool:
        """Keep the weights of the best validation loss so far; count the epochs since."""
        if val_loss < self.best - 1e-6:
            self.best, self.since_best = val_loss, 0
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}
            return True
        self.since_best += 1
        return False

    def fit(self, tensors, resume: bool = False) -> dict:
        s = self.settings
        if s.dp_epsilon is not None:  # FitOptions refuses resume with it
            return self.fit_private(tensors)
        loader, val = self.split(tensors)
        # fused: one kernel over every parameter; on 2 CPU cores a step of llama's 2 M parameters took 0.62 ms fused
        # and 2.4 ms in the default (foreach) form, an epoch of IoT Sentinel 2.4 % less (BENCHMARKS.md)
        optimizer = torch.optim.AdamW(self.module.parameters(), lr=s.lr, weight_decay=s.weight_decay, fused=True)
        self.ema = WeightAverage(self.module.parameters()) if s.ema else None
        if resume:
            self.restore(optimizer)
        epochs, patience = s.budget(len(loader))
        scheduler = self.schedule(optimizer, len(loader), epochs)
        # the loss is computed inside the prepared module's forward, so that a distributed wrapper sees it
        loss_module = self.compiled() if s.compile else self.loss_module
        module, prepared_optimizer, loader = self.accelerator.prepare(loss_module, optimizer, loader)
        if self.ema is not None:  # made beside the weights before they moved
            self.ema.shadow = [average.to(self.accelerator.device) for average in self.ema.shadow]
        for epoch in range(self.start_epoch, epochs):
            if self.stop_or_cool_down(epoch, epochs, patience):
                break
            t0 = time.perf_counter()
            train_loss = self.epoch(module, loader, prepared_optimizer, scheduler, f"epoch {epoch + 1}/{epochs}")
            with self.averaged():  # validated, and kept as the best, with the weights that training ends with
                val_loss = _evaluate(module, val, s.batch_size, self.accelerator.device) if len(val[0]) else train_loss
                best = self.improved(val_loss)
            seconds = time.perf_counter() - t0
            for key, value in zip(self.history, (epoch + 1, train_loss, val_loss, seconds)):
                self.history[key].append(value)
            self.log(f"epoch {epoch + 1}/{epochs}  train loss {train_loss:.4f}  val loss {val_loss:.4f}  {seconds:.1f} s"
                     + ("  (best)" if best else ""))
            if not math.isfinite(train_loss):
                raise NetsynthError(f"training diverged at epoch {epoch + 1} (loss {train_loss}); lower --lr")
            self.save(optimizer, epoch, last=False)
        if self.history["epochs"]:
            self.save(optimizer, self.history["epochs"][-1] - 1, last=True)
        if self.best_state is not None:
            self.module.load_state_dict(self.best_state)
        self.module.eval()
        return {**self.history, "best_val_loss": self.best, "steps_per_epoch": len(loader)}

    def fit_private(self, tensors) -> dict:
        """DP-SGD through Opacus: Poisson-sampled batches, per-flow gradients clipped to dp_max_grad_norm, Gaussian
        noise set by Opacus for the budget over all epochs (RDP accountant). Every flow is trained on and the last
        epoch is kept: choosing an epoch by a held-out loss would use flows outside the guarantee."""
        s, n = self.settings, len(tensors[0])
        delta = s.delta_for(n)
        self.generator = torch.Generator().manual_seed(s.seed)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*tensors), batch_size=s.batch_size,
                                             shuffle=True, generator=self.generator)
        optimizer = torch.optim.AdamW(self.module.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        engine, module, optimizer, criterion, loader = make_private(
            module=self.loss_module.to(self.accelerator.device).train(), optimizer=optimizer, data_loader=loader,
            target_epsilon=s.dp_epsilon, target_delta=delta, epochs=s.epochs, max_grad_norm=s.dp_max_grad_norm,
            noise_generator=torch.Generator(self.accelerator.device).manual_seed(s.seed))
        # DP trains s.epochs exactly (no min_steps): the noise is set for them
        scheduler = self.schedule(optimizer.original_optimizer, len(loader), s.epochs)
        for epoch in range(s.epochs):
            t0 = time.perf_counter()
            train_loss = self.private_epoch(module, criterion, loader, optimizer, scheduler,
                                            f"epoch {epoch + 1}/{s.epochs}")
            spent = engine.get_epsilon(delta)
            # no held-out flows under DP: the "validation" loss of the history is the training loss
            for key, value in zip(self.history, (epoch + 1, train_loss, train_loss, time.perf_counter() - t0)):
                self.history[key].append(value)
            self.log(f"epoch {epoch + 1}/{s.epochs}  train loss {train_loss:.4f}  epsilon spent {spent:.2f} of "
                     f"{s.dp_epsilon:g} (delta {delta:.1e})")
        spent = engine.get_epsilon(delta)
        if spent > s.dp_epsilon * (1 + 1e-6):  # never claim a budget that was not kept
            raise NetsynthError(f"DP training spent epsilon {spent:.3f}, above the {s.dp_epsilon:g} asked for")
        self.module.eval()
        dp = {"epsilon": spent, "target_epsilon": s.dp_epsilon, "delta": delta, "noise_multiplier": optimizer.noise_multiplier,
              "max_grad_norm": s.dp_max_grad_norm, "sample_rate": 1 / len(loader), "steps": sum(steps for *_, steps in engine.accountant.history),
              "accountant": "rdp (Opacus)"}
        return {**self.history, "best_val_loss": None, "differential_privacy": dp}

    def private_epoch(self, module, criterion, loader, optimizer, scheduler, title: str) -> float:
        total, count = 0.0, 0
        device = self.accelerator.device
        with EpochBar(title, len(loader), self.progress) as bar, warnings.catch_warnings():
            # Opacus's hooks on a first layer whose input (token ids) needs no gradient: harmless
            warnings.filterwarnings("ignore", "Full backward hook is firing")
            for batch in loader:
                if len(batch[0]) == 0:  # Poisson sampling can draw an empty batch
                    continue
                loss = criterion(module(*(t.to(device) for t in batch)))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += loss.item() * len(batch[0])
                count += len(batch[0])
                bar.advance(total / count)
        return total / max(1, count)

    def save(self, optimizer, epoch: int, last: bool) -> None:
        """A checkpoint after the last epoch, and every `checkpoint_every` seconds before it: on a small set an
        epoch takes milliseconds, and writing the weights three times after each would be most of the work."""
        due = last or time.monotonic() - self.saved_at >= self.settings.checkpoint_every
        if due and epoch != self.saved_epoch and self.ckpt is not None and self.accelerator.is_main_process:
            self.saved_at, self.saved_epoch = time.monotonic(), epoch
            ema = None if self.ema is None else {str(i): p for i, p in enumerate(self.ema.shadow)}
            _save_checkpoint(self.ckpt, self.module, self.best_state, optimizer, self.random_states(), ema,
                             {"epoch": epoch, "best": self.best, "since_best": self.since_best, "history": self.history,
                              "cooldown": self.cooldown,
                              "ema_step": None if self.ema is None else self.ema.steps})

    def random_states(self) -> dict[str, torch.Tensor]:
        """Every generator that decides the rest of training: the data order and torch's global generator
        (dropout, the CVAE's and the diffusion's noise), and CUDA's where it is used."""
        states = {"data_order": self.generator.get_state(), "torch": torch.get_rng_state()}
        if self.accelerator.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.accelerator.device)
        return states

    def restore(self, optimizer) -> None:
        ckpt = _checkpoint_folder(self.ckpt)
        if ckpt is None:
            raise NetsynthError(f"--resume: no checkpoint in {self.ckpt.parent if self.ckpt else None}")
        state = json.loads((ckpt / "state.json").read_text())
        self.module.load_state_dict(load_file(str(ckpt / "model.safetensors")))
        self.best_state = load_file(str(ckpt / "best.safetensors"))
        _load_optimizer(optimizer, load_file(str(ckpt / "optimizer.safetensors")))
        self.start_epoch, self.best, self.since_best = state["epoch"] + 1, state["best"], state["since_best"]
        self.history = state["history"]
        self.cooldown = tuple(state["cooldown"]) if state.get("cooldown") else None  # absent from older checkpoints
        if (self.ema is not None) != (state.get("ema_step") is not None):
            raise NetsynthError(f"--resume: the checkpoint in {ckpt} was trained {'with' if self.ema is None else 'without'}"
                                " --ema; resume it the same way")
        if self.ema is not None:
            shadow = load_file(str(ckpt / "ema.safetensors"))
            self.ema.shadow = [shadow[str(i)] for i in range(len(shadow))]
            self.ema.steps = state["ema_step"]
        if not (ckpt / "random.safetensors").is_file():  # a checkpoint of netsynth 0.1
            self.generator.manual_seed(self.settings.seed + self.start_epoch)
            self.log("checkpoint without random states (netsynth 0.1): the data order is re-seeded, so the model "
                     "will differ from an uninterrupted run's")
            return
        rng = load_file(str(ckpt / "random.safetensors"))
        self.generator.set_state(rng["data_order"])
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.accelerator.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.accelerator.device)
        self.log(f"resumed after epoch {self.start_epoch} (best validation loss {self.best:.4f})")


class WeightAverage:
    """An exponential moving average of weights with the warm-up of diffusers' EMAModel (power 2/3, decay capped at
    0.9999): after step t > 1 the average moves t^(-2/3) of the way to the weights, at step 1 all of the way. The
    averaging of diffusion models since Ho et al. 2020, as diffusers' training scripts keep it; its horizon grows with
    training (about 300 steps after 5,000), where a fixed decay of 0.9999 would still remember the initialization after
    NetDiffus-NR's few thousand steps. Written here because EMAModel.step of diffusers 0.30, the floor, reads
    `transformers.deepspeed`, which transformers 5 removed."""

    def __init__(self, params):
        self.shadow, self.steps = [p.detach().clone() for p in params], 0

    @torch.no_grad()
    def step(self, params) -> None:
        self.steps += 1
        weight = max(1e-4, self.steps ** (-2 / 3))  # 1 at the first step
        for average, param in zip(self.shadow, params):
            average.lerp_(param.detach(), weight)

    @torch.no_grad()
    def copy_to(self, params) -> None:
        for average, param in zip(self.shadow, params):
            param.copy_(average)


class FlowMean:
    """The criterion DP-SGD applies to a batch's per-flow losses [B]: their mean, or the losses themselves while
    Opacus's ghost clipping asks for reduction "none" (it weighs each flow by its clipping factor)."""
    reduction = "mean"

    def __call__(self, per_flow: torch.Tensor) -> torch.Tensor:
        return per_flow if self.reduction == "none" else per_flow.mean()


def make_private(mode: str = "ghost", **kwargs):
    """Opacus's privacy engine (it holds the accountant) and the (module, optimizer, criterion, loader) it made
    private for a budget (`kwargs`: those of make_private_with_epsilon).

    mode "ghost": ghost clipping (Li et al. 2022, "Large Language Models Can Be Strong Differentially Private
    Learners"; Opacus's fast gradient clipping), two backward passes that give each flow's gradient norm without
    the per-flow gradients: a llama step at batch 1,024 4.0x faster on a 2-core CPU, in 261 MB instead of 9.3 GB
    (benchmarks/dp_speed.py). "hooks": every per-flow gradient materialized, the reference the tests hold ghost
    clipping to."""
    from opacus import PrivacyEngine

    with warnings.catch_warnings():  # Opacus warns that secure_mode is off; the noise is seeded on purpose (README)
        warnings.simplefilter("ignore")
        engine = PrivacyEngine(accountant="rdp")
        if mode == "ghost":
            return engine, *engine.make_private_with_epsilon(criterion=FlowMean(), grad_sample_mode="ghost", **kwargs)
        module, optimizer, loader = engine.make_private_with_epsilon(grad_sample_mode=mode, **kwargs)
    return engine, module, optimizer, FlowMean(), loader


class WithLoss(torch.nn.Module):
    """A model and its loss as one module whose forward returns the loss (each flow's own under DP), under bf16
    autocast for precision bf16 (weights, gradients and the optimizer stay float32). Not Accelerate's mixed_precision: it is fixed for the
    whole process at the first Accelerator, and netsynth trains kinds of different precisions in one process."""

    def __init__(self, model: torch.nn.Module, loss_fn: Callable, precision: str = "fp32"):
        super().__init__()
        self.model, self.loss_fn, self.precision = model, loss_fn, precision

    def forward(self, *batch):
        with autocast(self.precision, batch[0].device):
            return self.loss_fn(self.model, *batch)


class Compiled(torch.nn.Module):
    """A module through torch.compile, whose compiler's failure (no working C++ compiler, say) is one line that
    names the way out rather than inductor's traceback."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.inner = torch.compile(module)

    def forward(self, *batch):
        from torch._dynamo.exc import BackendCompilerFailed

        try:
            return self.inner(*batch)
        except BackendCompilerFailed as e:
            reason = str(e).strip().splitlines()[0]
            raise NetsynthError(f"--compile: torch.compile failed ({reason}); train without --compile") from None


VALIDATION_SEED = 0


@torch.no_grad()
def _evaluate(module, tensors, batch_size, device) -> float:
    """The mean validation loss. Losses that draw (diffusion's timesteps and noise, the CVAE's latent) draw the
    same numbers at every epoch (common random numbers), so that epochs differ by their weights alone: with fresh
    draws, a small validation split swung NetDiffus-NR's loss by about 25 % from epoch to epoch and early stopping
    kept a lucky epoch. The training's own random stream is left as it was."""
    module.eval()
    total = 0.0
    n = len(tensors[0])
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
        torch.manual_seed(VALIDATION_SEED)
        for i in range(0, n, batch_size):
            batch = [t[i:i + batch_size].to(device) for t in tensors]
            total += module(*batch).item() * len(batch[0])
    return total / n


class EpochBar:
    """A progress bar with the running loss, shown when `enabled` (logs get one line per epoch instead)."""

    def __init__(self, description: str, total: int, enabled: bool):
        self.description, self.total, self.enabled, self.progress = description, total, enabled, None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), transient=True, console=Console(stderr=True))
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=self.total)
        return self

    def advance(self, loss: float):
        if self.progress:
            self.progress.update(self.task, advance=1, description=f"{self.description} loss {loss:.4f}")

    def __exit__(self, *exc):
        if self.progress:
            self.progress.stop()


def _save_checkpoint(ckpt: Path, module, best_state, optimizer, random_states: dict,
                     ema: dict[str, torch.Tensor] | None, state: dict):
    """The checkpoint folder is replaced whole, so that a kill at any moment leaves one consistent epoch. `ema`: the
    averaged weights (WeightAverage), or None."""
    files = {"model.safetensors": {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()},
             "best.safetensors": {k: v.contiguous() for k, v in best_state.items()},
             "optimizer.safetensors": _flatten_optimizer(optimizer), "random.safetensors": random_states,
             **({"ema.safetensors": {k: v.detach().cpu().contiguous() for k, v in ema.items()}} if ema else {})}
    with atomic_path(ckpt) as tmp:
        tmp.mkdir()
        for name, tensors in files.items():
            save_file(tensors, str(tmp / name))
        (tmp / "state.json").write_text(json.dumps(state))


def _checkpoint_folder(ckpt: Path | None) -> Path | None:
    """The checkpoint, or the one it was replacing when a kill came between the two renames of `atomic_path`."""
    if ckpt is None:
        return None
    for folder in (ckpt, ckpt.with_name(f".{ckpt.name}.old")):
        if (folder / "state.json").is_file():
            return folder
    return None


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
