"""What the neural generators share: a torch module built from the config, trained by the one loop."""
from __future__ import annotations

import contextlib
import dataclasses
import sys

import numpy as np
import torch

from netsynth import precision
from netsynth.flows import FlowSet
from netsynth.models.base import Generator
from netsynth.models.options import FitOptions
from netsynth.train import fit_module, is_main_process, resolve_device

FIT_OPTIONS = frozenset(f.name for f in dataclasses.fields(FitOptions))


class NeuralGenerator(Generator):
    train_options = FIT_OPTIONS - {"compile"}  # the kinds where torch.compile was measured add it (models/llama.py)
    private = True  # its loss keeps one row per flow (_private_loss)
    auto_bf16 = False  # whether precision auto may choose bf16 (only where its quality was measured, BENCHMARKS.md)

    @classmethod
    def nominal_parameters(cls, n_classes: int, n_packets: int, max_size: int) -> int:
        model = cls()
        model.classes_ = tuple(f"class{i}" for i in range(n_classes))
        model.n_packets_, model.max_size_ = n_packets, max_size
        model._restore_codec({"codec": {"classes": list(model.classes_), "n_packets": n_packets,
                                        "max_size": max_size, "observed": None}})
        return sum(p.numel() for p in model._build().parameters())

    def _build(self) -> torch.nn.Module:
        raise NotImplementedError

    def _extend(self, module: torch.nn.Module) -> torch.nn.Module:
        """Parts a kind adds to the module it builds (llama and mamba: the timing head)."""
        return module

    @contextlib.contextmanager
    def _training_on(self, device: torch.device):
        """What a kind sets on its module while it trains on `device` (llama: its attention kernel, and on a CPU a
        table of its rotary embedding that goes when training ends)."""
        yield

    def _tensors(self, train: FlowSet) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def _loss(self, module, *batch) -> torch.Tensor:
        raise NotImplementedError

    def _prepare(self, train: FlowSet, private: bool) -> None:
        """Learn the representation (codec) from the training data before the module is built. `private`: DP-SGD
        trains the module, whose guarantee covers only the weights, so the representation must not come from
        the flows' values (only from classes, packets per flow and max_size)."""

    def _private_loss(self, module, *batch) -> torch.Tensor:
        """Each flow's own loss [B] for DP-SGD, whose per-flow gradients need every layer to see one row per flow."""
        raise NotImplementedError

    def _fit(self, train: FlowSet, options: FitOptions) -> None:
        self._prepare(train, private=options.dp_epsilon is not None)
        torch.manual_seed(options.seed)
        self.module_ = self._extend(self._build())
        shown = options.verbose or options.progress
        log = (lambda msg: print(msg, file=sys.stderr)) if shown and is_main_process() else None
        device = resolve_device(options.device)
        settings = dataclasses.replace(options.train_settings(), precision=self._training_precision(options, device))
        if log:
            log(f"{self.kind}: {self.n_parameters:,} trainable parameters, {len(train)} flows, "
                f"{len(self.classes_)} classes, device {device}")
            for note in self.runtime_notes(device) + [self._precision_note(settings.precision, options, device)]:
                log(note)
        loss = self._loss if options.dp_epsilon is None else self._private_loss
        with self._training_on(device):
            self.history_ = fit_module(self.module_, loss, self._tensors(train), settings,
                                       checkpoint_dir=options.checkpoint_dir, resume=options.resume, log=log,
                                       progress=options.progress)
        self.privacy_ = self.history_.pop("differential_privacy", None)
        self.history_["precision"] = settings.precision

    def resolve_precision(self, choice: str, device: torch.device) -> str:
        """fp32 or bf16: `choice` resolved for this kind on `device` (auto picks bf16 only where the kind allows it)."""
        return precision.resolve(choice, device) if self.auto_bf16 or choice != "auto" else "fp32"

    def _training_precision(self, options: FitOptions, device: torch.device) -> str:
        return "fp32" if options.dp_epsilon is not None else self.resolve_precision(options.precision, device)

    def _precision_note(self, used: str, options: FitOptions, device: torch.device) -> str:
        if options.precision == "auto" and options.dp_epsilon is not None:
            return "precision fp32 (auto: DP-SGD trains in float32)"
        if options.precision == "auto" and not self.auto_bf16:
            return f"precision fp32 (auto: {self.kind}'s bf16 quality has not been measured)"
        return precision.describe(used, options.precision, device)

    @property
    def n_parameters(self) -> int:
        self._check_fitted()
        return sum(p.numel() for p in self.module_.parameters() if p.requires_grad)

    def _state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.module_.state_dict().items()}

    def _restore(self, config: dict, state: dict[str, np.ndarray]) -> None:
        self._restore_codec(config)
        self.module_ = self._extend(self._build())
        self.module_.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        self.module_.eval()

    def _restore_codec(self, config: dict) -> None:
        """Rebuild the representation from config.json before the module is built."""
