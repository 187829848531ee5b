"""Topping up a small training set with synthetic flows (the low-data augmentation of DESIGN section 6)."""
from __future__ import annotations

from netsynth.errors import NetsynthError
from netsynth.flows import FlowSet
from netsynth.models.base import Generator


def top_up(real: FlowSet, generator: Generator, target: int, seed: int = 0) -> FlowSet:
    """`real` plus synthetic flows so that every class of `real` has `target` flows (none removed)."""
    counts = {c: max(0, target - k) for c, k in real.present_counts().items()}
    unknown = sorted(set(counts) - set(generator.classes_ or ()))
    if unknown:
        raise NetsynthError(f"the {generator.kind} model does not know class(es) {unknown}")
    synthetic = generator.sample(counts, seed=seed)
    out = FlowSet.concat([real.select([c for c in real.classes if c in counts]), synthetic.select(list(counts))])
    out.group = None  # synthetic flows come from no capture
    return out.with_classes(real.classes) if set(out.classes) != set(real.classes) else out
