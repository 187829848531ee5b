"""markov: a per-class first-order Markov chain over flow tokens, the classic statistical generator.

States are <START>, each signed length and <END>; transition counts are learned per class and a flow is a
walk from <START> until <END> or N packets. Stored as sparse (class, from, to, count) triplets.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netsynth.flows import FlowSet
from netsynth.models.options import FitOptions, SampleOptions
from netsynth.models.base import Generator

END = 0  # state 0 is <START> as a source and <END> as a target; lengths are 1.. (index into `values`)


@dataclass
class MarkovConfig:
    pass


class Markov(Generator):
    kind = "markov"
    Config = MarkovConfig
    description = "per-class first-order Markov chain over signed lengths"

    def _fit(self, train: FlowSet, options: FitOptions) -> None:
        signed, length = train.signed, train.length
        self.values_ = np.unique(signed[train.direction != 0])
        state = np.zeros(signed.shape, dtype=np.int64)
        real = train.direction != 0
        state[real] = np.searchsorted(self.values_, signed[real]) + 1
        n, N = state.shape
        # transitions: START -> s1, s_i -> s_i+1, s_len -> END (state 0 in the target column)
        prev = np.hstack([np.zeros((n, 1), np.int64), state])
        nxt = np.hstack([state, np.zeros((n, 1), np.int64)])
        valid = np.arange(N + 1)[None, :] <= length[:, None]
        cls = np.repeat(train.codes[:, None], N + 1, axis=1)
        triples = np.stack([cls[valid], prev[valid], nxt[valid]], axis=1)
        uniq, counts = np.unique(triples, axis=0, return_counts=True)
        self.transitions_ = np.hstack([uniq, counts[:, None]]).astype(np.int64)
        self._index()

    def _index(self):
        """Rows (class, from) -> slice of `transitions_`, sorted, for sampling."""
        t = self.transitions_
        keys = t[:, 0] * (len(self.values_) + 1) + t[:, 1]
        self._row_keys, self._row_start = np.unique(keys, return_index=True)
        self._row_end = np.append(self._row_start[1:], len(t))

    def _sample(self, codes: np.ndarray, seed: int, options: SampleOptions) -> FlowSet:
        rng = np.random.default_rng(seed)
        t = self.transitions_
        n, N = len(codes), self.n_packets_
        signed = np.zeros((n, N), dtype=np.int64)
        state = np.zeros(n, dtype=np.int64)
        alive = np.ones(n, dtype=bool)
        for step in range(N):
            keys = codes * (len(self.values_) + 1) + state
            rows = np.searchsorted(self._row_keys, keys)
            for i in np.flatnonzero(alive):
                lo, hi = self._row_start[rows[i]], self._row_end[rows[i]]
                targets, weights = t[lo:hi, 2], t[lo:hi, 3].astype(float)
                if step == 0:  # a flow has at least one packet
                    weights = np.where(targets == END, 0.0, weights)
                nxt = targets[np.searchsorted(np.cumsum(weights), rng.random() * weights.sum(), side="right")]
                if nxt == END:
                    alive[i] = False
                else:
                    state[i] = nxt
                    signed[i, step] = self.values_[nxt - 1]
        return self._to_flows(signed, codes)

    def _state(self):
        return {"values": self.values_, "transitions": self.transitions_}

    def _restore(self, config, state):
        self.values_, self.transitions_ = state["values"], state["transitions"]
        self._index()
