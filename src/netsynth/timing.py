"""What a replayable capture needs beyond sizes: packet timing (log-spaced inter-arrival-time bins, the per-class
empirical timing model, timing fidelity) and each flow's service (protocol and server port, drawn per class).

llama and mamba learn gaps themselves (a head over their hidden state, models/sequence.py, with a bias per class
fitted after training: class_bias); every other kind trained with timing uses the empirical model, a baseline
(issue 11): for each class, packet position k and pair of directions (previous packet, this packet) it keeps the
histogram of the inter-arrival time (IAT) over log-spaced bins and draws each synthetic packet's IAT from it,
log-uniformly inside the drawn bin. It conditions on what most shapes a gap (a reply follows its request fast; a
new request waits on the application) and on nothing else, so any generator's flows can carry timing without the
generator learning it. Cells with no training packet fall back to the class's histogram for that direction pair,
then to the class's.

Timing fidelity (lower is better, in [0, 1], per class then macro-averaged, as the six metrics):
    jsd_log_iat     JSD of the histograms of the IATs of every packet after the first, over the bins below
    jsd_duration    JSD of the histograms of flow durations (the sum of a flow's IATs), over the same bins
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from netsynth.errors import NetsynthError
from netsynth.flows import FlowSet
from netsynth.metrics import jsd

# bin b >= 1 holds IATs in [EDGES[b-1], EDGES[b]); bin 0 holds gaps under a microsecond (pcap's resolution)
EDGES = np.logspace(-6, 3, 46)  # 1 us .. 1000 s, 5 bins per decade
N_BINS = len(EDGES)


def bins(seconds: np.ndarray) -> np.ndarray:
    """Bin index of each time (same shape); times from 1000 s on share the last bin."""
    return np.clip(np.searchsorted(EDGES, np.asarray(seconds, dtype=np.float64), side="right"), 0, N_BINS - 1)


def has_gap(direction: np.ndarray) -> np.ndarray:
    """[n, N] True at every packet that follows another in its flow: the packets with an inter-arrival time (the
    first packet's is 0 by definition, padding has none)."""
    return (direction != 0) & (np.arange(direction.shape[1]) > 0)


def _direction_pairs(direction: np.ndarray) -> np.ndarray:
    """[n, N] index 0..3 of (previous packet upstream?, this packet upstream?); position 0 pairs with itself."""
    up = (direction > 0).astype(np.int64)
    prev = np.concatenate([up[:, :1], up[:, :-1]], axis=1)
    return 2 * prev + up


def require_timing(flows: FlowSet, what: str) -> None:
    if flows.iat is None:
        raise NetsynthError(f"{what} carry no inter-arrival times: ingest captures, MIRAGE JSON, CESNET tables, or "
                            "sequence tables with --iat-column / --timestamp-column")


class EmpiricalTiming:
    """p(IAT bin | class, position, direction pair), fitted on real flows; draws IATs for any flows."""

    def __init__(self, table: np.ndarray):
        self.table = table  # [C, N, 4, N_BINS] probabilities, fallbacks already filled in

    @classmethod
    def fit(cls, flows: FlowSet) -> "EmpiricalTiming":
        require_timing(flows, "the training flows")
        N, C = flows.n_packets, len(flows.classes)
        counts = np.zeros((C, N, 4, N_BINS))
        rows, cols = np.nonzero(has_gap(flows.direction))
        np.add.at(counts, (flows.codes[rows], cols, _direction_pairs(flows.direction)[rows, cols],
                           bins(flows.iat[rows, cols])), 1)
        by_pair = counts.sum(axis=1, keepdims=True)
        by_class = counts.sum(axis=(1, 2), keepdims=True)
        table = np.where(counts.sum(-1, keepdims=True) > 0, counts,
                         np.where(by_pair.sum(-1, keepdims=True) > 0, by_pair, by_class))
        total = table.sum(-1, keepdims=True)
        table = np.where(total > 0, table / np.maximum(total, 1), np.eye(N_BINS)[0])  # no timing at all: gaps of 0
        return cls(table.astype(np.float64))

    def draw(self, flows: FlowSet, seed: int) -> np.ndarray:
        """IATs [n, N] in seconds (float32) for `flows` (whose codes index this model's classes); 0 at padding."""
        rng = np.random.default_rng([seed, 1])  # a stream of its own: the sizes drawn with `seed` stay as they were
        iat = np.zeros(flows.size.shape, dtype=np.float64)
        rows, cols = np.nonzero(has_gap(flows.direction))
        p = self.table[flows.codes[rows], cols, _direction_pairs(flows.direction)[rows, cols]]
        iat[rows, cols] = draw_seconds(p, rng)
        return iat.astype(np.float32)


def draw_seconds(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One time per row of bin probabilities [m, N_BINS]: a bin by inverse CDF, then a value log-uniform in it
    (0 for the bin under a microsecond)."""
    b = np.minimum((rng.random(len(probs))[:, None] > np.cumsum(probs, axis=1)).sum(1), N_BINS - 1)
    low, high = np.log(np.r_[EDGES[0], EDGES][b]), np.log(EDGES[b])
    return np.where(b == 0, 0.0, np.exp(low + rng.random(len(probs)) * (high - low)))


def class_histograms(flows: FlowSet) -> np.ndarray:
    """[C, N_BINS] each class's share of gaps per bin, over every packet after a flow's first (0 for a class without)."""
    rows, cols = np.nonzero(has_gap(flows.direction))
    counts = np.zeros((len(flows.classes), N_BINS))
    np.add.at(counts, (flows.codes[rows], bins(flows.iat[rows, cols])), 1)
    return counts / np.maximum(counts.sum(1, keepdims=True), 1)


def class_bias(logits: np.ndarray, codes: np.ndarray, target: np.ndarray, tol: float = 1e-5,
               max_iter: int = 2000) -> np.ndarray:
    """The bias per class [C, N_BINS] that, added to the logits [m, N_BINS] of m packets of classes `codes` [m], makes
    each class's mean gap distribution over its packets its `target` histogram [C, N_BINS].

    Of all ways to change the m distributions so that the class means hit the targets, adding a bias per class
    to the logits (an exponential tilt) is the one that moves them least, in KL divergence (the I-projection,
    Csiszar 1975); it keeps what the logits say about each packet. Found by iterative scaling (Darroch and
    Ratcliff 1972: each step adds log(target / mean prediction)). Bins a class's target lacks get -inf; a class
    without packets or without a target keeps bias 0."""
    bias = np.zeros(target.shape)
    for c in np.unique(codes):
        if target[c].sum() == 0:
            continue
        z = logits[codes == c].astype(np.float64)
        seen = target[c] > 0
        b = np.where(seen, 0.0, -np.inf)
        for _ in range(max_iter):
            p = np.exp(z + b - (z + b).max(1, keepdims=True))
            mean = (p / p.sum(1, keepdims=True)).mean(0)
            if np.abs(mean - target[c]).max() < tol:
                break
            b = np.where(seen, b + np.log(np.where(seen, target[c], 1) / np.maximum(mean, 1e-300)), -np.inf)
        bias[c] = b - b[seen].max()  # softmax ignores a shift: keep the values small for float32
    return bias


def jsd_log_iat(real: FlowSet, synth: FlowSet) -> float:
    def hist(f: FlowSet):
        return Counter(bins(f.iat[has_gap(f.direction)]).tolist())
    return jsd(hist(real), hist(synth))


def jsd_duration(real: FlowSet, synth: FlowSet) -> float:
    def hist(f: FlowSet):
        return Counter(bins(np.where(f.direction != 0, f.iat, 0).sum(axis=1)).tolist())
    return jsd(hist(real), hist(synth))


class EmpiricalServices:
    """p(protocol, server port | class): the training flows' services, drawn in proportion to their counts."""

    def __init__(self, table: np.ndarray):
        self.table = table  # int64 [m, 4]: class code, protocol, port, count

    @classmethod
    def fit(cls, flows: FlowSet) -> "EmpiricalServices":
        rows, counts = np.unique(np.column_stack([flows.codes, flows.service]), axis=0, return_counts=True)
        return cls(np.column_stack([rows, counts]).astype(np.int64))

    def draw(self, codes: np.ndarray, seed: int) -> np.ndarray:
        """(protocol, port) [n, 2] for flows of classes `codes`; a class never seen gets TCP 443."""
        rng = np.random.default_rng([seed, 2])
        out = np.tile(np.array([6, 443], np.int32), (len(codes), 1))
        for c in np.unique(codes):
            mine = self.table[self.table[:, 0] == c]
            rows = np.flatnonzero(codes == c)
            if len(mine):
                pick = rng.choice(len(mine), size=len(rows), p=mine[:, 3] / mine[:, 3].sum())
                out[rows] = mine[pick, 1:3]
        return out


TIMING_METRICS = {"jsd_log_iat": jsd_log_iat, "jsd_duration": jsd_duration}


def timing_fidelity(real: FlowSet, synth: FlowSet) -> dict | None:
    """Both timing metrics per class and macro-averaged; None when either side carries no IATs."""
    if real.iat is None or synth.iat is None:
        return None
    classes = [c for c in real.present_counts() if c in synth.present_counts()]
    per_class = {c: {name: fn(real.select([c]), synth.select([c])) for name, fn in TIMING_METRICS.items()}
                 for c in classes}
    return {"per_class": per_class,
            "macro": {name: float(np.mean([per_class[c][name] for c in classes])) for name in TIMING_METRICS}}
