"""Options of `fit` and `sample`: how a model is trained or sampled, as opposed to what defines it (its config).

Every kind accepts every option below, so that one loop over kinds can pass the same ones; a kind says which
it uses (`Generator.train_options`, `sample_options`), and one it does not use is ignored with a one-line
note (a `NetsynthNote` warning; the CLI prints it as `note: ...`). Except a privacy budget: a kind that does
not train with DP refuses dp_epsilon, since a model trained without the guarantee asked for is a wrong result.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

from netsynth import precision
from netsynth.errors import NetsynthError


class NetsynthNote(UserWarning):
    """Something the user asked for that this model does not use."""


@dataclass
class TrainSettings:
    """How a neural generator is trained (the one loop in netsynth.train)."""
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    val_fraction: float = 0.1
    patience: int = 5  # epochs without a better validation loss before the cool-down and the end (netsynth.train)
    # On a small set an epoch is a few optimizer steps, and models need steps, not epochs: the epoch cap rises
    # until training may run min_steps steps, and patience until it covers a tenth of them. 0: epochs alone.
    min_steps: int = 0
    checkpoint_every: float = 30.0  # seconds between checkpoints (and one after the last epoch); 0: every epoch
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto | fp32 | bf16 (netsynth.precision)
    dp_epsilon: float | None = None  # train with differential privacy to this budget (DP-SGD for neural kinds); None: no DP
    dp_delta: float | None = None  # None: 1 / (10 x the training flows), well below 1 / n
    dp_max_grad_norm: float = 1.0  # per-flow gradient clipping bound of DP-SGD
    compile: bool = False  # llama: the loss through torch.compile (netsynth.train); off: on small sets it costs more than it saves
    ema: bool = False  # validate and end with an exponential moving average of the weights (netsynth.train.WeightAverage)

    def delta_for(self, n_flows: int) -> float:
        """The DP delta for a training set of `n_flows`: dp_delta, or 1 / (10 n) where none was given."""
        return self.dp_delta if self.dp_delta is not None else 1 / (10 * n_flows)

    def __post_init__(self):
        for name in ("epochs", "batch_size", "patience"):
            if int(getattr(self, name)) < 1:
                raise NetsynthError(f"{name} must be at least 1, got {getattr(self, name)}")
        precision.check(self.precision)
        if self.min_steps < 0:
            raise NetsynthError(f"min_steps must be at least 0, got {self.min_steps}")
        if not self.lr > 0:
            raise NetsynthError(f"lr must be positive, got {self.lr}")
        if self.dp_epsilon is not None and not self.dp_epsilon > 0:
            raise NetsynthError(f"dp_epsilon must be positive, got {self.dp_epsilon}")
        if not 0 <= self.val_fraction < 1:
            raise NetsynthError(f"val_fraction must be in [0, 1), got {self.val_fraction}")

    def budget(self, steps_per_epoch: int) -> tuple[int, int]:
        """(epoch cap, patience in epochs) for an epoch of `steps_per_epoch` optimizer steps."""
        epochs = max(self.epochs, math.ceil(self.min_steps / steps_per_epoch))
        return epochs, max(self.patience, math.ceil(0.1 * self.min_steps / steps_per_epoch))


@dataclass
class FitOptions(TrainSettings):
    checkpoint_dir: str | None = None  # a checkpoint after every epoch goes to <checkpoint_dir>/checkpoint
    resume: bool = False  # continue from that checkpoint
    verbose: bool = False  # parameter count, per-epoch losses and notes on stderr
    progress: bool | None = None  # a progress bar per epoch on stderr; None: only on a terminal

    def __post_init__(self):
        super().__post_init__()
        if self.resume and self.dp_epsilon is not None:
            raise NetsynthError("--resume is not available with --dp-epsilon (the privacy accountant is not "
                                "checkpointed): train again")
        if self.precision == "bf16" and self.dp_epsilon is not None:
            raise NetsynthError("--precision bf16 is not available with --dp-epsilon (DP-SGD trains in float32)")
        if self.compile and self.dp_epsilon is not None:
            raise NetsynthError("--compile is not available with --dp-epsilon (Opacus hooks every layer of the eager module)")
        if self.ema and self.dp_epsilon is not None:
            raise NetsynthError("--ema is not available with --dp-epsilon (DP-SGD keeps its last weights)")

    def train_settings(self) -> TrainSettings:
        return TrainSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(TrainSettings)})


SAMPLE_BATCH = 1024  # flows generated at once where none is asked for (llama and mamba take more on a GPU)


@dataclass
class SampleOptions:
    temperature: float = 1.0  # sequence models and cvae: logits / temperature
    top_k: int = 0  # sequence models: draw among the k most likely tokens (0 = all)
    batch_size: int | None = None  # flows generated at once; None: SAMPLE_BATCH, and 32,768 for llama and mamba on a GPU
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # sequence models: auto | fp32 | bf16 (netsynth.precision)
    steps: int = 20  # diffusion: denoising steps
    sampler: str = "dpm-solver++"  # diffusion: dpm-solver++ | ddim

    def __post_init__(self):
        precision.check(self.precision)
        if not self.temperature > 0:
            raise NetsynthError(f"temperature must be positive, got {self.temperature}")


def resolve_options(cls, given: dict, used: frozenset[str], kind: str, defaults: dict | None = None):
    """An options dataclass `cls` from `given` (None = not given) over `defaults`; a name `cls` does not know
    is an error, one that this kind does not use is dropped with a note."""
    names = [f.name for f in dataclasses.fields(cls)]
    given = {k: v for k, v in given.items() if v is not None}
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise NetsynthError(f"unknown option(s) {unknown}; valid: {names}")
    ignored = sorted(set(given) - used)
    if ignored:
        warnings.warn(f"{kind} does not use {', '.join(ignored)}; ignored", NetsynthNote, stacklevel=3)
    return cls(**{**(defaults or {}), **{k: v for k, v in given.items() if k in used}})
