"""Fidelity and privacy metrics (DESIGN section 6): pure functions, each with its name, goal and range.

Every metric compares flows of ONE class, given as lists of signed-length tuples (no padding); `fidelity`
computes them per class and macro-averages. All are lower-is-better and lie in [0, 1]. JSDs use base 2.
Histogram bins are the exact signed values by default; `bin_width` > 1 groups sizes into bins of that many
bytes (the sign, i.e. direction, is always kept).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from netsynth.errors import NetsynthError
from netsynth.flows import FlowSet

Seqs = Sequence[tuple[int, ...]]
START, END = "<start>", "<end>"


def jsd(p: Counter, q: Counter) -> float:
    """Jensen-Shannon divergence (base 2) of two histograms given as Counters over any keys; 0 = same, 1 = disjoint."""
    keys = sorted(set(p) | set(q), key=repr)  # a fixed order: string hashes (hence set order) change per process
    if not keys:
        return 0.0
    a = np.array([p.get(k, 0) for k in keys], dtype=np.float64)
    b = np.array([q.get(k, 0) for k in keys], dtype=np.float64)
    if a.sum() == 0 or b.sum() == 0:
        return 0.0 if a.sum() == b.sum() else 1.0
    a, b = a / a.sum(), b / b.sum()
    m = (a + b) / 2

    def kl(x):
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return float(min(1.0, max(0.0, (kl(a) + kl(b)) / 2)))


def _binned(seqs: Seqs, width: int) -> list[tuple[int, ...]]:
    if width <= 1:
        return list(seqs)
    return [tuple(int(np.sign(v)) * (abs(v) // width) for v in s) for s in seqs]


def jsd_num_packets(real: Seqs, synth: Seqs, bin_width: int = 1) -> float:
    return jsd(Counter(len(s) for s in real), Counter(len(s) for s in synth))


def jsd_1gram(real: Seqs, synth: Seqs, bin_width: int = 1) -> float:
    return jsd(Counter(v for s in _binned(real, bin_width) for v in s),
               Counter(v for s in _binned(synth, bin_width) for v in s))


def jsd_2gram(real: Seqs, synth: Seqs, bin_width: int = 1) -> float:
    def pairs(seqs):
        return Counter(p for s in _binned(seqs, bin_width) for p in zip(s, s[1:]))
    return jsd(pairs(real), pairs(synth))


def _transitions(seqs: Seqs) -> dict:
    rows: dict = {}
    for s in seqs:
        path = (START, *s, END)
        for a, b in zip(path, path[1:]):
            rows.setdefault(a, Counter())[b] += 1
    return rows


def jsd_markov(real: Seqs, synth: Seqs, bin_width: int = 1) -> float:
    """JSD of each row of the first-order transition matrix (start state included, end state as a column),
    averaged with the real row counts as weights; a row the synthetic flows never visit counts as disjoint."""
    r, s = _transitions(_binned(real, bin_width)), _transitions(_binned(synth, bin_width))
    weights = {a: sum(row.values()) for a, row in r.items()}
    total = sum(weights.values())
    if total == 0:
        return 0.0
    return sum(w * jsd(r[a], s.get(a, Counter())) for a, w in weights.items()) / total


def uniqueness(seqs: Seqs) -> float:
    return len(set(seqs)) / len(seqs) if seqs else 0.0


def uniq_align(real: Seqs, synth: Seqs, bin_width: int = 1) -> float:
    return abs(uniqueness(real) - uniqueness(synth))


def leakage(train: Seqs, synth: Seqs, bin_width: int = 1) -> float:
    """Jaccard similarity of the distinct sequences of the training data and of the synthetic data."""
    a, b = set(train), set(synth)
    return len(a & b) / len(a | b) if a | b else 0.0


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[..., float]
    goal: str  # "minimize": every metric here is lower-is-better
    range: tuple[float, float]
    against: str  # "real" (the test flows) or "train" (the generator's training flows)
    description: str


METRICS = [
    Metric("jsd_num_packets", jsd_num_packets, "minimize", (0.0, 1.0), "real",
           "how differently flow lengths (packets per flow) are distributed: Jensen-Shannon divergence of the two "
           "histograms, 0 = same, 1 = disjoint."),
    Metric("jsd_1gram", jsd_1gram, "minimize", (0.0, 1.0), "real",
           "the same for single packets: JSD of the histograms of signed lengths (size and direction)."),
    Metric("jsd_2gram", jsd_2gram, "minimize", (0.0, 1.0), "real",
           "the same for pairs of consecutive packets: does each size follow the sizes it follows in real flows?"),
    Metric("jsd_markov", jsd_markov, "minimize", (0.0, 1.0), "real",
           "JSD of each row of the packet-to-packet transition matrices, weighted by how often real flows use "
           "the row."),
    Metric("uniq_align", uniq_align, "minimize", (0.0, 1.0), "real",
           "how far the share of distinct flows differs from the real share (too low: repetitive; too high: noise)."),
    Metric("leakage", leakage, "minimize", (0.0, 1.0), "train",
           "the share of distinct flows common to the training and the synthetic flows (Jaccard): memorized "
           "training flows, a privacy risk."),
]
METRIC_NAMES = [m.name for m in METRICS]


def check_comparable(real: FlowSet, synth: FlowSet, what: str = "synthetic") -> None:
    if real.n_packets != synth.n_packets:
        raise NetsynthError(f"real flows have N={real.n_packets} packets, {what} flows N={synth.n_packets}")
    r = set(real.present_counts())
    s = set(synth.present_counts())
    if r != s:
        raise NetsynthError(f"real and {what} flows have different classes: only real {sorted(r - s)}, "
                            f"only {what} {sorted(s - r)}")


def _by_class(flows: FlowSet) -> dict[str, list]:
    out: dict[str, list] = {c: [] for c in flows.classes}
    for seq, label in zip(flows.sequences(), flows.label):
        out[label].append(seq)
    return out


def fidelity(real: FlowSet, synth: FlowSet, train: FlowSet | None = None, bin_width: int = 1) -> dict:
    """Every metric per class and macro-averaged: {"per_class": {class: {metric: v}}, "macro": {metric: v}}.
    Without `train`, leakage is left out."""
    check_comparable(real, synth)
    r, s = _by_class(real), _by_class(synth)
    t = _by_class(train) if train is not None else None
    classes = [c for c in real.classes if r[c]]
    per_class = {}
    for c in classes:
        per_class[c] = {}
        for m in METRICS:
            if m.against == "train":
                if t is None:
                    continue
                per_class[c][m.name] = m.fn(t.get(c, []), s[c], bin_width)
            else:
                per_class[c][m.name] = m.fn(r[c], s[c], bin_width)
    names = [m.name for m in METRICS if t is not None or m.against == "real"]
    macro = {n: float(np.mean([per_class[c][n] for c in classes])) for n in names}
    return {"per_class": per_class, "macro": macro}


def real_floor(real: FlowSet, reference: FlowSet, bin_width: int = 1) -> dict:
    """The metrics of a real set in the place of the synthetic one: what "near zero" means for these data.

    `reference` is real traffic of the size and class counts of the synthetic sets being judged (the
    generators' training split), compared with the same `real` (test) flows, so that the floor has the same
    sampling noise as every model's figure. Leakage here is the Jaccard of the two real sets: how often real
    traffic repeats itself exactly."""
    return fidelity(real, reference.select(list(real.present_counts())), train=real, bin_width=bin_width)
