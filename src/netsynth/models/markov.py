"""markov: a per-class first-order Markov chain over flow tokens, the classic statistical generator.

States are <START>, each signed length and <END>; transition weights are learned per class (the counts of the
training flows) and a flow is a walk from <START> until <END> or N packets. Stored as sparse
(class, from, to) triplets with their weights.

With `dp_epsilon` the weights are a differentially private release of those counts, the Gaussian mechanism
applied once (netsynth.gaussian_mechanism), instead of DP-SGD: a chain is its counts, so noise goes straight on
them (the "noisy marginals" of Zhang et al., "PrivSyn", USENIX Security 2021, for one conditional table).
- each flow's transitions are counted and scaled to L2 norm 1, so that adding or removing one flow moves the table
  by at most 1 (the sensitivity), whatever its length;
- the states are every signed length up to max_size, not the lengths seen (they would leak the flows);
- noise N(0, sigma^2) goes on every cell of the class x from x to table, and a cell is kept where its noisy
  weight is above the threshold at which noise alone keeps about one cell per class (sigma times the normal's
  upper 1 / S^2 quantile, S the states): a chain over 3,001 states would otherwise walk mostly to lengths no flow
  had. Both are fixed before the data are seen; everything after the release is post-processing. The noise
  follows the seed, as DP-SGD's does (README, "Privacy": train a published model with a seed nobody knows).
- a class whose start row did not survive starts its flows with the start row of all classes together; a state
  without a row ends the flow.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from netsynth.errors import NetsynthError
from netsynth.flows import FlowSet
from netsynth.gaussian_mechanism import noise_scale, sparse_release
from netsynth.models.base import Generator
from netsynth.models.options import FitOptions, SampleOptions

END = 0  # state 0 is <START> as a source and <END> as a target; lengths are 1.. (index into `values`)
NEVER = 1e-12  # the probability that log_likelihood gives a move the chain never makes: a finite score


@dataclass
class MarkovConfig:
    pass


def transitions(train: FlowSet, values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every transition of every flow: (flow, position, class, from state, to state), START -> s1 ... s_len -> END,
    at positions 0..len; a length not in `values` is state -1."""
    real = train.direction != 0
    state = np.zeros(train.signed.shape, dtype=np.int64)
    index = np.searchsorted(values, train.signed[real])
    found = values[np.minimum(index, len(values) - 1)] == train.signed[real]
    state[real] = np.where(found, index + 1, -1)
    n, N = state.shape
    prev = np.hstack([np.zeros((n, 1), np.int64), state])
    nxt = np.hstack([state, np.zeros((n, 1), np.int64)])
    valid = np.arange(N + 1)[None, :] <= train.length[:, None]
    flow = np.repeat(np.arange(n)[:, None], N + 1, axis=1)
    position = np.repeat(np.arange(N + 1)[None, :], n, axis=0)
    cls = np.repeat(train.codes[:, None].astype(np.int64), N + 1, axis=1)
    return flow[valid], position[valid], cls[valid], prev[valid], nxt[valid]


def draw(weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k indices drawn with probability proportional to `weights` (inverse CDF: one uniform number per draw)."""
    cdf = np.cumsum(weights)
    return np.minimum(np.searchsorted(cdf, rng.random(k) * cdf[-1], side="right"), len(weights) - 1)


def weight_at(cells: np.ndarray, weights: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The weight of each of `keys` in a sparse table (`cells` sorted, their `weights`); 0 where a key has no cell."""
    at = np.minimum(np.searchsorted(cells, keys), len(cells) - 1)
    return np.where(cells[at] == keys, weights[at], 0.0)


def flow_weights(train: FlowSet, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The table that DP releases: cells (class, from, to) flattened over S = len(values) + 1 states, and their
    weights, each flow's transition counts scaled to L2 norm 1 (the table's sensitivity to one flow)."""
    S = len(values) + 1
    flow, _, cls, prev, nxt = transitions(train, values)
    pairs, count = np.unique(np.stack([flow, (cls * S + prev) * S + nxt], axis=1), axis=0, return_counts=True)
    flow_norm = np.sqrt(np.bincount(pairs[:, 0], weights=count.astype(float) ** 2))
    cells, where = np.unique(pairs[:, 1], return_inverse=True)
    return cells, np.bincount(where, weights=count / flow_norm[pairs[:, 0]])


class Markov(Generator):
    kind = "markov"
    Config = MarkovConfig
    description = "per-class first-order Markov chain over signed lengths"
    train_options = frozenset({"seed", "dp_epsilon", "dp_delta"})
    private = True

    def _fit(self, train: FlowSet, options: FitOptions) -> None:
        if options.dp_epsilon is None:
            self.values_ = np.unique(train.signed[train.direction != 0])
            _, _, cls, prev, nxt = transitions(train, self.values_)
            self.transitions_, counts = np.unique(np.stack([cls, prev, nxt], axis=1), axis=0, return_counts=True)
            self.weights_, self.privacy_ = counts.astype(np.float64), None
        else:
            sizes = np.arange(1, self.max_size_ + 1)
            self.values_ = np.concatenate([-sizes[::-1], sizes])
            self._fit_private(train, options)
        self._index()

    def _fit_private(self, train: FlowSet, options: FitOptions) -> None:
        S, C = len(self.values_) + 1, len(self.classes_)
        cells, weights = flow_weights(train, self.values_)
        delta = options.delta_for(len(train))
        sigma = noise_scale(options.dp_epsilon, delta)
        threshold = sigma * norm.isf(1 / S ** 2)
        cells, weights = sparse_release(cells, weights, C * S * S, sigma, threshold,
                                        np.random.default_rng(options.seed))
        table = np.stack([cells // (S * S), cells // S % S, cells % S], axis=1)
        self.transitions_, self.weights_ = self._with_start_rows(table, weights, options.dp_epsilon)
        self.privacy_ = {"epsilon": options.dp_epsilon, "target_epsilon": options.dp_epsilon, "delta": delta,
                         "noise_multiplier": sigma, "sensitivity": 1.0, "threshold": threshold,
                         "mechanism": "Gaussian on transition counts, each flow's scaled to L2 norm 1, released once",
                         "accountant": "analytic Gaussian (Balle and Wang 2018)"}

    def _with_start_rows(self, table: np.ndarray, weights: np.ndarray, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
        """`table` where every class has a start row with a packet: the pooled one where its own did not survive."""
        starts = (table[:, 1] == 0) & (table[:, 2] != END)
        targets = np.unique(table[starts, 2])
        if len(targets) == 0:
            raise NetsynthError(f"markov: no flow start survived the noise at epsilon {epsilon:g}; "
                                "a larger epsilon or more flows per class")
        pooled = np.bincount(np.searchsorted(targets, table[starts, 2]), weights=weights[starts])
        missing = np.setdiff1d(np.arange(len(self.classes_)), table[starts, 0])
        extra = np.stack([np.repeat(missing, len(targets)), np.zeros(len(missing) * len(targets), np.int64),
                          np.tile(targets, len(missing))], axis=1)
        table, weights = np.vstack([table, extra]), np.concatenate([weights, np.tile(pooled, len(missing))])
        order = np.lexsort(table.T[::-1])
        return table[order], weights[order]

    def _index(self):
        """Rows (class, from) -> slice of `transitions_`, sorted, for sampling; each row's total weight, and the
        weight of its moves to a packet (what the first step draws from)."""
        t = self.transitions_
        keys = t[:, 0] * (len(self.values_) + 1) + t[:, 1]
        self._row_keys, self._row_start, row = np.unique(keys, return_index=True, return_inverse=True)
        self._row_end = np.append(self._row_start[1:], len(t))
        self._row_total = np.bincount(row, weights=self.weights_, minlength=len(self._row_keys))
        self._row_packets = np.bincount(row, weights=self.weights_ * (t[:, 2] != END), minlength=len(self._row_keys))

    def log_likelihood(self, flows: FlowSet) -> np.ndarray:
        """log p(flow | class) in nats per flow, as `sample` draws it: the first packet among the start row's moves
        to a packet, <END> after a packet whose state has no row, no <END> after the N-th packet. A move the chain
        never makes, and each move into or out of a length it does not know, counts as probability NEVER: the
        white-box attack's score."""
        self._check_fitted()
        present = flows.select(list(flows.present_counts())).with_classes(self.classes_)
        S = len(self.values_) + 1
        drawn = transitions(present, self.values_)
        drawn = [a[drawn[1] < present.n_packets] for a in drawn]  # after the N-th packet the walk stops, no <END>
        flow, position, cls, prev, nxt = drawn
        row = np.minimum(np.searchsorted(self._row_keys, cls * S + prev), len(self._row_keys) - 1)
        has_row = self._row_keys[row] == cls * S + prev
        weight = weight_at(self.transitions_ @ np.array([S * S, S, 1]), self.weights_, (cls * S + prev) * S + nxt)
        total = np.where(position == 0, self._row_packets[row], self._row_total[row])
        p = np.where(has_row, weight / np.where(has_row, total, 1.0), (nxt == END).astype(float))
        p[(prev < 0) | (nxt < 0)] = 0.0
        return np.bincount(flow, weights=np.log(np.maximum(p, NEVER)), minlength=len(present))

    def _sample(self, codes: np.ndarray, seed: int, options: SampleOptions) -> FlowSet:
        rng = np.random.default_rng(seed)
        n, N = len(codes), self.n_packets_
        signed = np.zeros((n, N), dtype=np.int64)
        state = np.zeros(n, dtype=np.int64)
        alive = np.ones(n, dtype=bool)
        for step in range(N):
            keys = codes * (len(self.values_) + 1) + state
            rows = np.minimum(np.searchsorted(self._row_keys, keys), len(self._row_keys) - 1)
            alive &= self._row_keys[rows] == keys  # a state without a row ends the flow (only after DP's threshold)
            for i in np.flatnonzero(alive):
                lo, hi = self._row_start[rows[i]], self._row_end[rows[i]]
                targets, weights = self.transitions_[lo:hi, 2], self.weights_[lo:hi]
                if step == 0:  # a flow has at least one packet
                    weights = np.where(targets == END, 0.0, weights)
                nxt = targets[draw(weights, 1, rng)[0]]
                if nxt == END:
                    alive[i] = False
                else:
                    state[i] = nxt
                    signed[i, step] = self.values_[nxt - 1]
        return self._to_flows(signed, codes)

    def _state(self):
        return {"values": self.values_, "transitions": self.transitions_, "weights": self.weights_}

    def _restore(self, config, state):
        self.values_, self.transitions_ = state["values"], state["transitions"]
        if "weights" not in state:  # saved before DP: counts in a fourth column
            self.transitions_, state = self.transitions_[:, :3], {**state, "weights": self.transitions_[:, 3]}
        self.weights_ = state["weights"].astype(np.float64)
        self._index()
