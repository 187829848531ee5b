"""tables: per-class tables of whole flows and of each position's lengths, made for a differentially private release.

A flow of class c is drawn whole, with probability the share of c's flows that recur, from c's recurring flows;
otherwise packet by packet: the signed length at position p (or <END>) from c's table of lengths at p,
independently of the packets before it. Without DP a flow recurs where at least RECUR training flows of its class
have it exactly, and the tables hold exact counts.

With `dp_epsilon` the three tables are one release of the Gaussian mechanism (netsynth.gaussian_mechanism): a flow
of n packets adds sqrt(A2) to its whole flow's cell, sqrt(G2) to its class's count and sqrt(B2 / (n + 1)) to each of
its n + 1 position cells (its packets and <END>); A2 + G2 + B2 = 1, so one flow moves the release by at most 1 in L2
norm, and N(0, sigma^2) on every cell makes it (epsilon, delta / 2)-DP.
- whole flows: only the cells of flows seen get noise, and a cell is kept where its noisy weight is above
  sigma * isf(delta_select). Of two training sets that differ in one flow, the one without it lacks that flow's
  cell; had the cell been given noise there too, noise alone would have lifted it over the bar with probability
  delta_select, so the output differs from the Gaussian mechanism over both sets' cells at most that often
  (partition selection; Korolova et al., "Releasing Search Queries and Clicks Privately", WWW 2009; Gopi et al.,
  "Differentially Private Set Union", ICML 2020). The release is then (epsilon, delta / 2 + e^epsilon
  delta_select)-DP, and delta_select = delta / (2 e^epsilon) makes it (epsilon, delta).
- positions: every cell of the class x position x signed-length table gets noise, zero or not (the sparse
  release), and is kept above the level at which noise alone keeps about one cell per class (the markov kind's
  rule);
- class counts: noise, no threshold. They set what share of a class is drawn whole.
Everything after the release is post-processing; the noise follows the seed (README, "Privacy").

Why whole flows: device traffic repeats itself (71 % of IoT Sentinel's training flows have the exact sequence of at
least 12 others of their class), and a whole flow's cell gets the flow's weight at once, where a Markov chain spreads
it over n + 1 transitions, each then below the noise. The per-position tables carry the flows that do not recur.
Measured against the Markov chain's release in BENCHMARKS.md ("Private tables against the private Markov chain").

Glossary: values_ the signed lengths of the position tables (state s is values_[s - 1], 0 is <END>); sequences_
[k, 1 + N] a class code and a whole flow's signed lengths; position_cells_ (class * (N + 1) + position) * S + state.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from netsynth.errors import NetsynthError
from netsynth.flows import FlowSet
from netsynth.gaussian_mechanism import noise_scale, sparse_release
from netsynth.models.base import Generator
from netsynth.models.markov import END, NEVER, draw, transitions, weight_at
from netsynth.models.options import FitOptions, SampleOptions

RECUR = 2  # without DP, a flow is drawn whole where at least this many training flows of its class share it
A2, G2, B2 = 0.48, 0.04, 0.48  # squared weights of a flow's whole-flow cell, class count and position cells under DP


@dataclass
class TablesConfig:
    pass


class Tables(Generator):
    kind = "tables"
    Config = TablesConfig
    description = ("recurring flows whole, the others packet by packet from per-class position tables; "
                   "made for a differentially private release (--dp-epsilon)")
    train_options = frozenset({"seed", "dp_epsilon", "dp_delta"})
    private = True

    def _fit(self, train: FlowSet, options: FitOptions) -> None:
        sizes = np.arange(1, self.max_size_ + 1)
        self.values_ = np.concatenate([-sizes[::-1], sizes])
        if options.dp_epsilon is None:
            (flows, counts), classes, (cells, weights) = flow_tables(train, self.values_)
            recur = counts >= RECUR
            self.sequences_, self.sequence_weights_ = flows[recur], counts[recur]
            self.class_totals_, self.position_cells_, self.position_weights_ = classes, cells, weights
            self.privacy_ = None
        else:
            self._release(train, options)
        self._index()

    def _release(self, train: FlowSet, options: FitOptions) -> None:
        (flows, flow_weights), class_weights, (cells, weights) = flow_tables(train, self.values_, private=True)
        epsilon, delta = options.dp_epsilon, options.delta_for(len(train))
        sigma = noise_scale(epsilon, delta / 2)
        select = delta / (2 * math.exp(epsilon))
        rng = np.random.default_rng(options.seed)
        noisy = flow_weights + rng.normal(0.0, sigma, len(flow_weights))
        keep = noisy > sigma * norm.isf(select)
        self.sequences_, self.sequence_weights_ = flows[keep], noisy[keep] / math.sqrt(A2)  # in flows, as without DP
        self.class_totals_ = (class_weights + rng.normal(0.0, sigma, len(class_weights))) / math.sqrt(G2)
        per_class = (self.n_packets_ + 1) * (len(self.values_) + 1)  # position x state cells of one class
        self.position_cells_, self.position_weights_ = sparse_release(
            cells, weights, len(self.classes_) * per_class, sigma, sigma * norm.isf(1 / per_class), rng)
        self.privacy_ = {"epsilon": epsilon, "target_epsilon": epsilon, "delta": delta, "noise_multiplier": sigma,
                         "sensitivity": 1.0, "selection_delta": select,
                         "mechanism": "Gaussian on whole-flow counts (partition selection), class counts and "
                                      "per-position length counts, each flow's weights of L2 norm 1, released once",
                         "accountant": "analytic Gaussian (Balle and Wang 2018) plus the selection's delta"}

    def _index(self):
        """Per class: the share drawn whole, and its recurring flows' slice; per (class, position): its row's slice."""
        C, S, N = len(self.classes_), len(self.values_) + 1, self.n_packets_
        codes = self.sequences_[:, 0]
        order = np.argsort(codes, kind="stable")
        self.sequences_, self.sequence_weights_ = self.sequences_[order], self.sequence_weights_[order]
        self._recurring = np.bincount(self.sequences_[:, 0], weights=self.sequence_weights_, minlength=C)
        self._whole_share = np.clip(self._recurring / np.maximum(self.class_totals_, 1.0), 0.0, 1.0)
        self._sequence_bounds = np.searchsorted(self.sequences_[:, 0], np.arange(C + 1))
        rows = self.position_cells_ // S
        self._row_bounds = np.searchsorted(rows, np.arange(C * (N + 1) + 1))
        packets = self.position_cells_ % S != END
        self._row_total = np.bincount(rows, weights=self.position_weights_, minlength=C * (N + 1))
        self._row_packets = np.bincount(rows, weights=self.position_weights_ * packets, minlength=C * (N + 1))
        starts = (rows % (N + 1) == 0) & packets
        self._pooled_start = (self.position_cells_[starts] % S, self.position_weights_[starts])
        if not len(self._pooled_start[0]) and self._whole_share.min() < 1:
            raise NetsynthError(f"tables: no flow start survived the noise at epsilon {self.privacy_['epsilon']:g}; "
                                "a larger epsilon or more flows per class")

    def log_likelihood(self, flows: FlowSet) -> np.ndarray:
        """log p(flow | class) in nats per flow, as `sample` draws it: drawn whole, or walked position by position
        (the first packet among its row's packets, or every class's where the row has none; <END> where a row is
        missing; no <END> after the N-th packet). A flow it cannot draw scores log NEVER: the white-box attack's score."""
        self._check_fitted()
        present = flows.select(list(flows.present_counts())).with_classes(self.classes_)
        S, N = len(self.values_) + 1, self.n_packets_
        codes = present.codes.astype(np.int64)
        known = dict(zip(map(tuple, self.sequences_.tolist()), self.sequence_weights_))
        weight = np.array([known.get(key, 0.0) for key in map(tuple, np.column_stack([codes, present.signed]).tolist())])
        whole = self._whole_share[codes] * weight / np.maximum(self._recurring[codes], NEVER)
        flow, position, cls, _, state = transitions(present, self.values_)
        drawn = position < N  # after the N-th packet the walk stops, no <END>
        flow, position, cls, state = flow[drawn], position[drawn], cls[drawn], state[drawn]
        row = cls * (N + 1) + position
        cell = weight_at(self.position_cells_, self.position_weights_, row * S + state)
        total = np.where(position == 0, self._row_packets[row], self._row_total[row])
        pooled = (position == 0) & (total == 0)  # a start row without a packet: every class's starts
        start_cells, start_weights = self._pooled_start
        cell[pooled] = [start_weights[start_cells == s].sum() for s in state[pooled]]
        total[pooled] = start_weights.sum()
        p = np.where(total > 0, cell / np.where(total > 0, total, 1.0), (state == END).astype(float))
        p[state < 0] = 0.0
        walk = np.exp(np.bincount(flow, weights=np.log(np.maximum(p, NEVER)), minlength=len(present)))
        return np.log(np.maximum(whole + (1 - self._whole_share[codes]) * walk, NEVER))

    def _sample(self, codes: np.ndarray, seed: int, options: SampleOptions) -> FlowSet:
        rng = np.random.default_rng(seed)
        S, N = len(self.values_) + 1, self.n_packets_
        states = np.zeros((len(codes), N), dtype=np.int64)
        whole = rng.random(len(codes)) < self._whole_share[codes]
        signed = np.zeros((len(codes), N), dtype=np.int64)
        for c in np.unique(codes[whole]):
            mine = np.flatnonzero(whole & (codes == c))
            lo, hi = self._sequence_bounds[c], self._sequence_bounds[c + 1]
            signed[mine] = self.sequences_[lo:hi, 1:][draw(self.sequence_weights_[lo:hi], len(mine), rng)]
        alive = ~whole
        for p in range(N):
            for c in np.unique(codes[alive]):
                mine = np.flatnonzero(alive & (codes == c))
                row = slice(self._row_bounds[c * (N + 1) + p], self._row_bounds[c * (N + 1) + p + 1])
                targets, weights = self.position_cells_[row] % S, self.position_weights_[row]
                if p == 0:  # a flow has at least one packet; a class without a start row takes every class's
                    weights = np.where(targets == END, 0.0, weights)
                    if not weights.sum() > 0:
                        targets, weights = self._pooled_start
                states[mine, p] = targets[draw(weights, len(mine), rng)] if weights.sum() > 0 else END
            alive &= states[:, p] != END
        walked = states > 0
        signed[walked] = self.values_[states[walked] - 1]
        return self._to_flows(signed, codes)

    def _state(self):
        return {"values": self.values_, "sequences": self.sequences_, "sequence_weights": self.sequence_weights_,
                "class_totals": self.class_totals_, "position_cells": self.position_cells_,
                "position_weights": self.position_weights_}

    def _restore(self, config, state):
        self.values_, self.sequences_ = state["values"], state["sequences"]
        self.sequence_weights_, self.class_totals_ = state["sequence_weights"], state["class_totals"]
        self.position_cells_, self.position_weights_ = state["position_cells"], state["position_weights"]
        self._index()


def flow_tables(train: FlowSet, values: np.ndarray, private: bool = False):
    """The three tables of `train`: whole flows [k, 1 + N] (class code, signed lengths) and their counts; class
    counts [C]; position cells (class * (N + 1) + position) * S + state and their counts. With `private`, each flow's
    entries weighted as DP releases them (A, G, B / sqrt(n + 1)): of L2 norm 1 together."""
    S, N = len(values) + 1, train.n_packets
    flows, counts = np.unique(np.column_stack([train.codes, train.signed]).astype(np.int64), axis=0, return_counts=True)
    flow, position, cls, _, state = transitions(train, values)
    cells, where = np.unique((cls * (N + 1) + position) * S + state, return_inverse=True)
    per_cell = math.sqrt(B2) / np.sqrt(train.length + 1.0) if private else np.ones(len(train))
    scale = (math.sqrt(A2), math.sqrt(G2)) if private else (1.0, 1.0)
    return ((flows, scale[0] * counts), scale[1] * np.bincount(train.codes, minlength=len(train.classes)).astype(float),
            (cells, np.bincount(where, weights=per_cell[flow])))

