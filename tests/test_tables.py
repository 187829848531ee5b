"""The tables kind: what it samples is what its tables say, and its DP release keeps its budget."""
import math

import numpy as np
import pytest

import netsynth
from netsynth import FlowSet
from netsynth.gaussian_mechanism import delta_of
from netsynth.models.tables import flow_tables

VALUES = np.r_[-1500:0, 1:1501]


def crafted() -> FlowSet:
    a = [[100, -50, 0]] * 3 + [[100, -60, 0], [200, 0, 0], [300, -50, 7]]
    return FlowSet.from_signed(np.array(a + [[9, 0, 0]] * 2 + [[9, -9, 0]]), ["a"] * 6 + ["b"] * 3)


def test_sampler_draws_each_flow_with_the_probability_of_its_tables():
    """Class a: half of its 6 flows recur ([100, -50], 3 times), so half its flows are that one drawn whole; the
    other half walk its position tables, 100: 4/6, 200: 1/6, 300: 1/6 at the first packet, -50: 4/6, -60: 1/6,
    <END>: 1/6 at the second, <END>: 4/5, 7: 1/5 at the third."""
    model = netsynth.create("tables").fit(crafted())
    flows = model.sample({"a": 40_000}, seed=0)
    seen = {tuple(row): n for row, n in zip(*np.unique(flows.signed, axis=0, return_counts=True))}
    expected = {(100, -50, 0): 0.5 + 0.5 * 4 / 6 * 4 / 6 * 4 / 5, (200, 0, 0): 0.5 / 36,
                (300, -50, 7): 0.5 * 1 / 6 * 4 / 6 * 1 / 5, (200, -60, 7): 0.5 * 1 / 6 * 1 / 6 * 1 / 5}
    for flow, p in expected.items():
        assert seen.get(flow, 0) / 40_000 == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / 40_000) + 1e-4), flow
    assert (100, 7, 0) not in seen  # no second packet of 7 in the table


def test_one_flow_moves_the_release_by_exactly_one(small_train):
    def entries(flows):
        (whole, w), classes, (cells, c) = flow_tables(flows, VALUES, private=True)
        return {**{("flow", *row): v for row, v in zip(map(tuple, whole), w)},
                **{("class", i): v for i, v in enumerate(classes)}, **{("cell", k): v for k, v in zip(cells, c)}}

    full = entries(small_train)
    for i in (0, 7, len(small_train) - 1):
        rest = entries(small_train.take(np.delete(np.arange(len(small_train)), i)))
        moved = [full[k] - rest.get(k, 0.0) for k in full]
        assert math.sqrt(sum(v * v for v in moved)) == pytest.approx(1.0)


def test_dp_release_keeps_its_budget_and_gives_only_recurring_flows_whole(tmp_path):
    rng = np.random.default_rng(0)
    unique = np.column_stack([rng.integers(1, 1500, (600, 2)), -rng.integers(1, 1500, 600)])  # flows seen once
    signed = np.vstack([np.tile([60, -80, 0], (300, 1)), np.tile([-70, 0, 0], (300, 1)), unique])
    flows = FlowSet.from_signed(signed, ["a"] * 300 + ["b"] * 300 + ["a", "b"] * 300)
    model = netsynth.create("tables").fit(flows, dp_epsilon=4.0, seed=1)
    dp = model.privacy_
    assert dp["delta"] == pytest.approx(1 / (10 * len(flows)))
    assert delta_of(dp["noise_multiplier"], 4.0) <= dp["delta"] / 2  # the Gaussian mechanism's half of delta
    assert dp["selection_delta"] * math.exp(4.0) == pytest.approx(dp["delta"] / 2)  # and the selection's
    assert sorted(map(tuple, model.sequences_)) == [(0, 60, -80, 0), (1, -70, 0, 0)]
    assert np.allclose(model.sequence_weights_, 300, atol=6 * dp["noise_multiplier"] / math.sqrt(0.48))
    again = netsynth.load(model.save(tmp_path / "m"))
    assert again.privacy_ == dp and np.array_equal(again.sample(n_per_class=50, seed=2).signed,
                                                   model.sample(n_per_class=50, seed=2).signed)
    other = netsynth.create("tables").fit(flows, dp_epsilon=4.0, seed=2)  # the noise follows the seed
    assert not np.array_equal(other.class_totals_, model.class_totals_)


def test_score_is_the_probability_that_the_sampler_draws_the_flow(small_train):
    """Known values on the crafted set (those of the sampler's test), and on real flows with and without DP the
    share of each frequent flow among 20,000 draws: the white-box attack scores what the model samples."""
    from netsynth.models.markov import NEVER

    model = netsynth.create("tables").fit(crafted())
    asked = FlowSet.from_signed(np.array([[100, -50, 0], [200, 0, 0], [200, -60, 7], [100, 7, 0], [9, -9, 0]]),
                                ["a", "a", "a", "a", "b"], classes=model.classes_)
    b = 1 * 1 / 3 * 1  # class b: [9] recurs (2 of 3); the walk: 9 always, then -9 1/3 (END 2/3), then <END>
    assert np.allclose(np.exp(model.log_likelihood(asked)),
                       [0.5 + 0.5 * 4 / 6 * 4 / 6 * 4 / 5, 0.5 / 36, 0.5 / 180, NEVER, (1 - 2 / 3) * b], rtol=1e-9)
    for epsilon in (None, 30.0):
        assert_scores_what_it_samples(netsynth.create("tables").fit(small_train, dp_epsilon=epsilon), code=0)


def test_a_class_without_a_start_row_starts_from_every_class(small_train, monkeypatch):
    import netsynth.models.tables as tables

    release, N = tables.sparse_release, small_train.n_packets
    S = 2 * int(small_train.meta.get("options", {}).get("max_size", 1500)) + 1

    def without_class_1_starts(cells, *args):
        out, values = release(cells, *args)
        keep = out // S != 1 * (N + 1)  # the row (class 1, position 0)
        return out[keep], values[keep]

    monkeypatch.setattr(tables, "sparse_release", without_class_1_starts)
    model = netsynth.create("tables").fit(small_train, dp_epsilon=30.0)
    walk_only = model.sequences_[:, 0] != 1  # and no whole flow of class 1: every flow of it walks
    model.sequences_, model.sequence_weights_ = model.sequences_[walk_only], model.sequence_weights_[walk_only]
    model._index()
    walked = model.sample({small_train.classes[1]: 2_000}, seed=0).signed[:, 0]
    assert set(walked) <= set(model.values_[model._pooled_start[0] - 1])
    assert_scores_what_it_samples(model, code=1)


def assert_scores_what_it_samples(model, code):
    """exp(score) of the 5 most frequent of 20,000 flows of class `code` (fewer where fewer differ) is their share
    among them."""
    drawn = model.sample({model.classes_[code]: 20_000}, seed=5)
    rows, counts = np.unique(drawn.signed, axis=0, return_counts=True)
    top = np.argsort(counts)[-5:]
    flows = FlowSet(np.abs(rows[top]), np.sign(rows[top]), np.full(len(top), code, np.int32), model.classes_)
    share = counts[top] / 20_000
    assert np.allclose(np.exp(model.log_likelihood(flows)), share, atol=4 * np.sqrt(share / 20_000))
