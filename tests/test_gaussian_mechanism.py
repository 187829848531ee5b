"""The Gaussian mechanism released once: its exact delta against the hockey-stick divergence integrated, its noise
against Opacus's RDP accountant, and the sparse thresholded release against the dense table it stands for."""
import math

import numpy as np
import pytest
from opacus.accountants.utils import get_noise_multiplier
from scipy import integrate
from scipy.stats import norm

from netsynth.gaussian_mechanism import delta_of, noise_scale, sparse_release


def hockey_stick(sigma: float, epsilon: float) -> float:
    """The reference: sup over neighbours of P[M(D) in S] - e^eps P[M(D') in S] for N(0, s^2) vs N(1, s^2),
    the integral of max(0, p - e^eps q) (Balle and Wang 2018, eq. 3)."""
    p, q = norm(1, sigma).pdf, norm(0, sigma).pdf
    return integrate.quad(lambda x: max(0.0, p(x) - math.exp(epsilon) * q(x)), -20 * sigma, 1 + 20 * sigma,
                          points=[0.5 + epsilon * sigma ** 2], limit=500)[0]


@pytest.mark.parametrize("sigma,epsilon", [(0.5, 1.0), (1.0, 4.0), (2.0, 1.0), (4.1, 0.3)])
def test_delta_is_the_hockey_stick_divergence(sigma, epsilon):
    assert delta_of(sigma, epsilon) == pytest.approx(hockey_stick(sigma, epsilon), rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("epsilon,delta", [(1.0, 1e-5), (4.0, 8.5e-6), (16.0, 1e-6)])
def test_noise_is_the_least_that_keeps_the_budget(epsilon, delta):
    sigma = noise_scale(epsilon, delta)
    assert delta_of(sigma, epsilon) <= delta < delta_of(sigma * (1 - 1e-6), epsilon)
    rdp = get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=1.0, steps=1)
    assert sigma < rdp  # RDP's conversion to (epsilon, delta) is loose for one release; the exact one never is


def test_sparse_release_is_the_dense_table_thresholded():
    """Cells 3 and 10 hold 2.0 and 0.5 in a table of 400; sigma 1, threshold 2. Known answers: a true cell is
    kept with P(N(v, 1) > 2), each zero cell with P(N(0, 1) > 2), and a kept zero cell's mean is the normal's
    tail mean pdf(2) / sf(2); the dense reference draws all 400 cells."""
    cells, values, n_cells, trials = np.array([3, 10]), np.array([2.0, 0.5]), 400, 4000
    rng = np.random.default_rng(0)
    kept = {"sparse": np.zeros(n_cells), "dense": np.zeros(n_cells)}
    tail_values = {"sparse": [], "dense": []}
    table = np.zeros(n_cells)
    table[cells] = values
    for _ in range(trials):
        out, out_values = sparse_release(cells, values, n_cells, 1.0, 2.0, rng)
        assert (np.diff(out) > 0).all() and (out_values > 2.0).all()
        dense = table + rng.normal(0, 1, n_cells)
        for name, at, v in (("sparse", out, out_values), ("dense", np.flatnonzero(dense > 2), dense[dense > 2])):
            kept[name][at] += 1
            tail_values[name].extend(v[~np.isin(at, cells)])
    zero = np.setdiff1d(np.arange(n_cells), cells)
    for name in kept:
        share = kept[name] / trials
        assert share[3] == pytest.approx(0.5, abs=0.03) and share[10] == pytest.approx(norm.sf(1.5), abs=0.02)
        false = kept[name][zero].sum()  # binomial: mean n p, sd sqrt(n p (1 - p))
        p = norm.sf(2.0)
        assert abs(false - trials * len(zero) * p) < 4 * math.sqrt(trials * len(zero) * p * (1 - p))
        assert np.mean(tail_values[name]) == pytest.approx(norm.pdf(2) / norm.sf(2), abs=0.02)
    # where the zero cells cross: uniform (every cell near trials x p, as in the dense table)
    assert abs(kept["sparse"][zero] / trials - norm.sf(2.0)).max() < 5 * math.sqrt(norm.sf(2.0) / trials)
