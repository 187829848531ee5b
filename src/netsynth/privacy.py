"""Privacy audit of a synthetic FlowSet against the generator's training split and a held-out test split.

What each figure follows:
- exact copies: the share of synthetic flows that occur verbatim in the training split, beside the base rate,
  the share of real test flows that do (short flows repeat by nature: two DNS lookups are often identical).
- distance to closest record (DCR, as in synthcity and SDMetrics' DCR metrics): for each synthetic flow, the
  distance to its nearest training flow and to its nearest test flow, the training side subsampled to the
  test side's size so that neither is closer by numbers alone; the share closer to training (ties half) is
  0.5 for a model that learned the distribution and 1 for one that copies.
- black-box membership inference: the Monte Carlo attack of Hilprecht et al. (PETS 2019) in its limit of the
  smallest neighbourhood: a candidate is scored by minus its distance to the nearest synthetic flow; members
  (training flows) against as many non-members (test flows); ROC AUC and the true-positive rate at 1 % false
  positives.
- white-box membership inference: the loss attack of Yeom et al. (CSF 2018): the model's own log-likelihood of
  each candidate is its score (llama, mamba, markov and tables: the exact likelihood; cvae: its evidence lower bound).

The distance: flows as vectors of their N signed lengths, zero after the flow ends, compared with the L1 norm.
A differing size costs its difference in bytes, a packet present in one flow and absent in the other costs its
size, a flipped direction twice its size: the bytes an observer would see differ by that much, position by
position, and packets are aligned because every flow starts at its first packet.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.neighbors import NearestNeighbors

from netsynth.errors import NetsynthError
from netsynth.flows import FlowSet

LONG = 4  # packets from which a verbatim copy says more than natural repetition


def copy_share(flows: FlowSet, reference: FlowSet, min_length: int = 1) -> float | None:
    """The share of `flows` (of at least `min_length` packets) whose labelled sequence occurs in `reference`."""
    seen = set(zip(reference.label, reference.sequences()))
    mine = [(label, seq) for label, seq in zip(flows.label, flows.sequences()) if len(seq) >= min_length]
    return sum(x in seen for x in mine) / len(mine) if mine else None


def nearest_distance(queries: np.ndarray, points: np.ndarray) -> np.ndarray:
    """L1 distance from every query row to its nearest row of `points` (signed-length vectors)."""
    index = NearestNeighbors(n_neighbors=1, metric="manhattan").fit(points)
    return index.kneighbors(queries)[0][:, 0]


def _by_class(fn, a: FlowSet, b: FlowSet) -> np.ndarray:
    """fn over each class apart (a flow's nearest record is sought among flows of its own class)."""
    out = np.full(len(a), 1e12)  # no flow of the class on the other side: as far as can be
    for c in set(a.label.tolist()):
        rows, ref = a.label == c, b.signed[b.label == c]
        if len(ref):
            out[rows] = fn(a.signed[rows], ref)
    return out


def membership(scores_members: np.ndarray, scores_others: np.ndarray) -> dict:
    """ROC AUC and the true-positive rate at 1 % false positives of scores where higher means member."""
    y = np.r_[np.ones(len(scores_members)), np.zeros(len(scores_others))]
    s = np.r_[scores_members, scores_others]
    fpr, tpr, _ = roc_curve(y, s)
    return {"auc": float(roc_auc_score(y, s)), "tpr_at_1pct_fpr": float(np.interp(0.01, fpr, tpr))}


def audit(train: FlowSet, test: FlowSet, synth: FlowSet, seed: int = 0, log_likelihood=None) -> dict:
    """Every figure of the module docstring; `log_likelihood(flows) -> array` adds the white-box attack."""
    if not (train.n_packets == test.n_packets == synth.n_packets):
        raise NetsynthError(f"flows of different N: train {train.n_packets}, test {test.n_packets}, "
                            f"synthetic {synth.n_packets}")
    rng = np.random.default_rng(seed)
    m = min(len(train), len(test))
    members, others = train.take(np.sort(rng.choice(len(train), m, replace=False))), test.take(np.sort(rng.choice(len(test), m, replace=False)))
    to_train, to_test = _by_class(nearest_distance, synth, members), _by_class(nearest_distance, synth, others)
    closer = np.mean((to_train < to_test) + 0.5 * (to_train == to_test))
    to_synth = _by_class(nearest_distance, FlowSet.concat([members, others]), synth)  # one index per class
    result = {
        "exact_copies": copy_share(synth, train), "exact_copies_base_rate": copy_share(test, train),
        "exact_copies_long": copy_share(synth, train, LONG), "exact_copies_long_base_rate": copy_share(test, train, LONG),
        "dcr_train_median": float(np.median(to_train)), "dcr_test_median": float(np.median(to_test)),
        "dcr_closer_to_train": float(closer),
        "black_box": membership(-to_synth[:m], -to_synth[m:]),
        "candidates": 2 * m, "seed": seed,
    }
    if log_likelihood is not None:
        result["white_box"] = membership(log_likelihood(members), log_likelihood(others))
    return result


def copies(flows: FlowSet, train: FlowSet, min_length: int = LONG) -> np.ndarray:
    """Mask of `flows` that copy a labelled training flow of at least `min_length` packets."""
    long = {(label, seq) for label, seq in zip(train.label, train.sequences()) if len(seq) >= min_length}
    return np.array([(label, seq) in long for label, seq in zip(flows.label, flows.sequences())], dtype=bool)


def redraw_copies(model, synth: FlowSet, train: FlowSet, seed: int, rounds: int = 10, **options) -> tuple[FlowSet, int, int]:
    """Replace, in place, the synthetic flows that copy a training flow of 4+ packets with fresh draws of their
    class (new seeds, up to `rounds` times); returns the flows, how many were replaced, and how many copies are left."""
    size, direction, replaced = synth.size.copy(), synth.direction.copy(), None
    for r in range(1, rounds + 1):
        current = FlowSet(size, direction, synth.codes, synth.classes, meta=dict(synth.meta))
        bad = copies(current, train)
        replaced = int(bad.sum()) if replaced is None else replaced
        if not bad.any():
            return current, replaced, 0
        wanted = current.take(np.flatnonzero(bad)).present_counts()
        fresh = model.sample(wanted, seed=seed + 7919 * r, **options)
        for c in wanted:
            rows, got = np.flatnonzero(bad & (current.label == c)), np.flatnonzero(fresh.label == c)
            size[rows], direction[rows] = fresh.size[got], fresh.direction[got]
    current = FlowSet(size, direction, synth.codes, synth.classes, meta=dict(synth.meta))
    return current, replaced, int(copies(current, train).sum())
