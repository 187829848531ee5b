"""Low-data augmentation (DESIGN section 6): keep a fraction of the real training flows of every class, top
every class up with synthetic flows to the size of the largest class of the full training set, train the
forest, score macro F1 on the real test split.

Generative models, trained once on the full training set, are represented by a pool of synthetic flows per
class (`pool_counts`: at least as many as the largest class), from which each (fraction, seed) draws what it
needs without replacement: the same flows the model would give, without generating them again for every cell.
SMOTE and fast-retransmit are fitted on the kept flows only, as in the paper.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

import numpy as np

from netsynth.augment import top_up
from netsynth.errors import NetsynthError
from netsynth.flows import FlowSet
from netsynth.models.base import create
from netsynth.models.registry import names
from netsynth.tasks.tstr import forest_f1


def augmentation_target(train_counts: Mapping[str, int], cap: int | None) -> int:
    """Flows per class after augmentation: the largest training class's count (the paper's rule), or the cap."""
    majority = max(train_counts.values())
    return min(majority, cap) if cap else majority


def pool_counts(train_counts: Mapping[str, int], target: int, seeds: int) -> dict[str, int]:
    """The synthetic flows a generative model fills its benchmark pool with, per class with training flows: one
    training set per seed (each seed's TSTR scores a draw of its own), or the augmentation target if larger."""
    return {c: max(target, k * seeds) for c, k in train_counts.items() if k}


class FlowPool:
    """Stands in for a fitted generator: `sample(counts, seed)` draws pooled synthetic flows of each class."""

    def __init__(self, name: str, pool: FlowSet):
        self.kind, self.pool = name, pool
        self.classes_ = pool.classes

    def sample(self, counts: Mapping[str, int], seed: int = 0) -> FlowSet:
        rng = np.random.default_rng(seed)
        picks = []
        for c, n in counts.items():
            members = np.flatnonzero(self.pool.codes == self.classes_.index(c))
            if n > len(members):
                raise NetsynthError(f"the {self.kind} pool has {len(members)} flows of {c!r}, {n} were asked for")
            picks.append(rng.choice(members, size=n, replace=False))
        return self.pool.take(np.concatenate(picks) if picks else np.zeros(0, int))


def check_fractions(fractions: Iterable[float]) -> list[float]:
    fractions = [float(f) for f in fractions]
    bad = [f for f in fractions if not 0 < f <= 1]
    if bad or not fractions:
        raise NetsynthError(f"fractions must be in (0, 1], got {bad or 'none'}")
    return fractions


def augmentation_curve(train: FlowSet, test: FlowSet, pools: Mapping[str, FlowSet], fractions: Iterable[float],
                       seeds: Iterable[int], baselines: Iterable[str] | None = None, target: int | None = None,
                       on_result: Callable[[dict], None] | None = None, only: Iterable[str] | None = None) -> list[dict]:
    """Records {method, fraction, seed, f1, n_train} for real-only, each data baseline and each pool (or only the
    methods named in `only`: each record depends on its own method alone, so a part equals the same part of the
    whole). Classes are topped up to `target` flows (default: the largest class of `train`)."""
    target = target or max(train.class_counts().values())
    baselines = names("baseline") if baselines is None else baselines
    records = []
    for seed in seeds:
        for fraction in check_fractions(fractions):
            kept = train.subsample(fraction, seed=seed)
            sets = {"real-only": lambda: kept}
            for kind in baselines:
                sets[kind] = lambda kind=kind: top_up(kept, create(kind).fit(kept), target, seed=seed)
            for name, pool in pools.items():
                sets[name] = lambda pool=pool, name=name: top_up(kept, FlowPool(name, pool), target, seed=seed)
            for method, make in sets.items():
                if only is not None and method not in only:
                    continue
                data = make()
                record = {"method": method, "fraction": fraction, "seed": seed,
                          "f1": forest_f1(data, test, seed=seed), "n_train": len(data)}
                records.append(record)
                if on_result:
                    on_result(record)
    return records
