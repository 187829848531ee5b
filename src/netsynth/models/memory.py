"""What the data-only baselines (smote, fast-retransmit) share: they keep the flows they are given."""
from __future__ import annotations

import numpy as np

from netsynth.flows import FlowSet
from netsynth.models.options import FitOptions
from netsynth.models.base import Generator


class FlowMemory(Generator):
    """A generator whose "model" is its training flows (signed lengths and class codes), stored as arrays."""

    def _fit(self, train: FlowSet, options: FitOptions) -> None:
        self.signed_ = train.signed.astype(np.int32)
        self.codes_ = train.codes.copy()

    def _state(self):
        return {"signed": self.signed_, "codes": self.codes_}

    def _restore(self, config, state):
        self.signed_, self.codes_ = state["signed"], state["codes"]
