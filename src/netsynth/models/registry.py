"""The one list of generator kinds. The CLI, the experiment, the report and the tests read their lists here.

A kind's module is imported on first use, so that listing the kinds costs no torch import. Adding a kind is
one module with its Generator subclass plus one `Kind(...)` line below (CONTRIBUTING.md shows one);
`register` does the same at run time, for a kind defined outside netsynth.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from netsynth.errors import NetsynthError


@dataclass(frozen=True)
class Kind:
    name: str
    target: str | type  # "module:Class", imported when first needed, or the Generator subclass itself
    display: str  # the name in reports and plots
    role: str  # "generative": trained once, then samples any class on request | "baseline": sees only the flows it is given
    # | "private": like generative, made for a DP release and not among the paper's models the benchmark compares
    trains: bool  # trained in epochs by the neural training loop (checkpoints, --resume)
    tiny: dict = field(default_factory=dict)  # the smallest settings (config) that the test suite trains

    def load(self) -> type:
        if not isinstance(self.target, str):
            return self.target
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)


KINDS: dict[str, Kind] = {}
ROLES = ("generative", "baseline", "private")


def register(kind: Kind) -> Kind:
    if kind.role not in ROLES:
        raise NetsynthError(f"kind {kind.name!r}: role must be one of {ROLES}, got {kind.role!r}")
    KINDS[kind.name] = kind
    return kind


for _kind in (
    Kind("llama", "netsynth.models.llama:Llama", "LLaMA", "generative", True,
         dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)),
    Kind("mamba", "netsynth.models.mamba:Mamba", "Mamba", "generative", True,
         dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1)),
    Kind("diffusion", "netsynth.models.diffusion:Diffusion", "NetDiffus-NR", "generative", True, dict(base_channels=8)),
    Kind("cvae", "netsynth.models.cvae:CVAE", "CVAE", "generative", True, dict(hidden_sizes=[32, 16], latent_size=4)),
    Kind("markov", "netsynth.models.markov:Markov", "Markov", "generative", False),
    Kind("tables", "netsynth.models.tables:Tables", "Private tables", "private", False),
    Kind("smote", "netsynth.models.smote:Smote", "SMOTE", "baseline", False),
    Kind("fast-retransmit", "netsynth.models.fast_retransmit:FastRetransmit", "Fast Retransmit", "baseline", False),
):
    register(_kind)


def kind(name: str) -> Kind:
    if name not in KINDS:
        raise NetsynthError(f"unknown model kind {name!r}; known kinds: {', '.join(sorted(KINDS))}")
    return KINDS[name]


def names(role: str | None = None) -> list[str]:
    """Kinds in registration order, optionally of one role."""
    return [k.name for k in KINDS.values() if role is None or k.role == role]


def display(name: str) -> str:
    """A kind's display name; other methods of a report (real-only) keep their own."""
    return KINDS[name].display if name in KINDS else {"real-only": "real only"}.get(name, name)
