"""The Gaussian mechanism released once, for counts with L2 sensitivity 1: its exact noise and a sparse release.

Exact noise: Balle and Wang, "Improving the Gaussian Mechanism for Differential Privacy: Analytical Calibration and
Optimal Denoising", ICML 2018, Theorem 8. Adding N(0, sigma^2) to a function of L2 sensitivity 1 is
(epsilon, delta)-DP exactly when
    delta >= Phi(1 / (2 sigma) - epsilon sigma) - e^epsilon Phi(-1 / (2 sigma) - epsilon sigma).
Written here because Opacus accounts for many subsampled steps (RDP, PRV); for one release its RDP bound asks
for 7-9 % more noise than this exact one at epsilon 1 to 4 and delta 8.5e-6 (a test compares the two).

Sparse release: noise is added to every cell of a table of `n_cells`, almost all of them zero, and only the cells
above a threshold are kept (Korolova et al. 2009; Wilson et al., "Differentially Private SQL with Bounded User
Contribution", 2020, both for counts). The zero cells are not materialized: how many of them cross the threshold
is a binomial draw, where they are is uniform and their values are the normal's tail above it, which is the same
distribution as the dense table (tested against it).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm


def delta_of(sigma: float, epsilon: float) -> float:
    """The smallest delta for which N(0, sigma^2) noise on a sensitivity-1 function is (epsilon, delta)-DP."""
    a, b = 1 / (2 * sigma), epsilon * sigma
    return float(norm.cdf(a - b) - math.exp(epsilon + norm.logcdf(-a - b)))  # e^eps in logs: no overflow


def noise_scale(epsilon: float, delta: float) -> float:
    """The smallest sigma (to a relative 1e-9, rounded up) with delta_of(sigma, epsilon) <= delta."""
    lo, hi = 1e-6, 1.0
    while delta_of(hi, epsilon) > delta:
        lo, hi = hi, 2 * hi
    while hi - lo > 1e-9 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if delta_of(mid, epsilon) > delta else (lo, mid)
    return hi


def sparse_release(cells: np.ndarray, values: np.ndarray, n_cells: int, sigma: float, threshold: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The cells (sorted) and values of a table of `n_cells` whose nonzero `cells` hold `values`, each cell plus
    N(0, sigma^2), where the noisy value is above `threshold`."""
    noisy = values + rng.normal(0.0, sigma, len(values))
    keep = noisy > threshold
    tail = norm.sf(threshold / sigma)  # the chance that a zero cell crosses the threshold
    k = rng.binomial(n_cells - len(cells), tail)
    taken = set(cells.tolist())
    extra = []
    while len(extra) < k:  # k distinct zero cells, uniform: draw, drop cells already taken
        for cell in rng.integers(0, n_cells, k - len(extra)).tolist():
            if cell not in taken:
                taken.add(cell)
                extra.append(cell)
    extra = np.asarray(extra, dtype=np.int64)
    extra_values = sigma * norm.isf(tail * rng.random(k))  # the normal above threshold / sigma, by inversion
    out_cells = np.concatenate([cells[keep], extra])
    order = np.argsort(out_cells, kind="stable")
    return out_cells[order], np.concatenate([noisy[keep], extra_values])[order]
