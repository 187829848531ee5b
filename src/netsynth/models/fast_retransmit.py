"""fast-retransmit: Rosetta's TCP-aware transformation, applied to the flows it is given.

Xie et al., "Rosetta: Enabling Robust TLS Encrypted Traffic Classification in Diverse Network
Environments with TCP-Aware Traffic Augmentation", USENIX Security 2023: each packet is lost with
probability p and re-sent (fast retransmit) right after the next packet that got through, so the new flow
has the same packets in a TCP-plausible order. New flows are real flows of the class, drawn with
replacement, transformed this way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netsynth.flows import FlowSet
from netsynth.models.options import SampleOptions
from netsynth.models.memory import FlowMemory


def fast_retransmit(sequence, p: float, rng: np.random.Generator) -> list:
    """One flow's packets with losses re-sent after the next surviving packet (order otherwise kept)."""
    out, lost = [], []
    for packet in sequence:
        if rng.random() < p:
            lost.append(packet)
        else:
            out.append(packet)
            out += lost
            lost = []
    return out + lost


@dataclass
class FastRetransmitConfig:
    p: float = 0.1


class FastRetransmit(FlowMemory):
    kind = "fast-retransmit"
    Config = FastRetransmitConfig
    description = "Rosetta's fast-retransmit transformation of real flows (loss probability p); sees only the data given"

    def _sample(self, codes: np.ndarray, seed: int, options: SampleOptions) -> FlowSet:
        rng = np.random.default_rng(seed)
        out = np.zeros((len(codes), self.n_packets_), dtype=np.int64)
        for i, code in enumerate(codes):
            pool = np.flatnonzero(self.codes_ == code)
            row = self.signed_[rng.choice(pool)]
            seq = fast_retransmit(row[row != 0].tolist(), self.config.p, rng)
            out[i, :len(seq)] = seq
        return self._to_flows(out, codes)
