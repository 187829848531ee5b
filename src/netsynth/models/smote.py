"""smote: SMOTE oversampling (imbalanced-learn) on the flows it is given, as the paper's baseline.

Chawla et al., "SMOTE: Synthetic Minority Over-sampling Technique", JAIR 2002. New flows interpolate
between a flow and one of its k nearest neighbours of the same class, in the space of signed lengths plus
the flow length; the result is projected back onto valid flows (length rounded to 1..N, every packet at
least 1 byte, padding after the length). A class with a single flow is copied.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netsynth.flows import FlowSet
from netsynth.models.options import SampleOptions
from netsynth.models.memory import FlowMemory


@dataclass
class SmoteConfig:
    k_neighbors: int = 5


class Smote(FlowMemory):
    kind = "smote"
    Config = SmoteConfig
    description = "SMOTE interpolation between real flows of a class (imbalanced-learn); sees only the data given"

    def _sample(self, codes: np.ndarray, seed: int, options: SampleOptions) -> FlowSet:
        from imblearn.over_sampling import SMOTE

        N, max_size = self.n_packets_, self.max_size_
        length = (self.signed_ != 0).sum(1)
        X = np.hstack([self.signed_, length[:, None]]).astype(np.float64)
        out = np.zeros((len(codes), N), dtype=np.int64)
        for code in np.unique(codes):
            want = np.flatnonzero(codes == code)
            mine = X[self.codes_ == code]
            if len(mine) < 2:
                new = mine[np.zeros(len(want), dtype=int)]
            else:
                # a two-class problem (this class vs the rest) lets SMOTE add exactly `len(want)` flows to it
                others = X[self.codes_ != code][:1]
                y = np.r_[np.ones(len(mine), int), np.zeros(len(others), int)]
                smote = SMOTE(sampling_strategy={1: len(mine) + len(want)},
                              k_neighbors=min(self.config.k_neighbors, len(mine) - 1), random_state=seed + int(code))
                Xr, _ = smote.fit_resample(np.vstack([mine, others]), y)
                new = Xr[len(mine) + len(others):]
            lengths = np.clip(np.rint(new[:, -1]), 1, N).astype(int)
            signed = np.clip(np.rint(new[:, :N]), -max_size, max_size).astype(np.int64)
            signed[signed == 0] = np.where(new[:, :N][signed == 0] >= 0, 1, -1)
            signed[np.arange(N)[None, :] >= lengths[:, None]] = 0
            out[want] = signed
        return self._to_flows(out, codes)
