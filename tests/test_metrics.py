"""The metrics of DESIGN section 6 against small hand-computed examples."""
from collections import Counter

import numpy as np
import pytest

from netsynth import FlowSet, NetsynthError
from netsynth.metrics import (METRICS, fidelity, jsd, jsd_1gram, jsd_2gram, jsd_markov, jsd_num_packets, leakage,
                              real_floor, uniq_align)


def test_jsd_known_values():
    assert jsd(Counter(a=3, b=1), Counter(a=6, b=2)) == 0.0
    assert jsd(Counter(a=1), Counter(b=5)) == 1.0
    # P = (1, 0), Q = (1/2, 1/2): M = (3/4, 1/4); (log2(4/3) + (1/2 log2(2/3) + 1/2 log2 2)) / 2
    expected = (np.log2(4 / 3) + 0.5 * np.log2(2 / 3) + 0.5) / 2
    assert jsd(Counter(a=1), Counter(a=1, b=1)) == pytest.approx(expected) == pytest.approx(0.31128, abs=1e-5)


def test_histogram_metrics_on_small_sets():
    real = [(100, -200), (100,)]
    assert jsd_num_packets(real, real) == jsd_1gram(real, real) == jsd_2gram(real, real) == jsd_markov(real, real) == 0
    assert jsd_num_packets(real, [(5, 6, 7)]) == 1.0
    assert jsd_1gram(real, [(-100,)]) == 1.0  # direction matters
    assert jsd_2gram([(1, 2)], [(2, 1)]) == 1.0
    assert jsd_1gram([(1491,)], [(1499,)], bin_width=10) == 0.0 and jsd_1gram([(1491,)], [(1499,)]) == 1.0


def test_markov_jsd_weights_rows_by_real_counts():
    # real rows: start->1, 1->2, 2->end; synthetic: start->1, 1->3, 3->end. Row "2" is never visited: disjoint.
    assert jsd_markov([(1, 2)], [(1, 3)]) == pytest.approx(2 / 3)
    # start row weight 2 (same), row 1 weight 2 (half 2, half end vs all end)
    row1 = jsd(Counter({2: 1, "<end>": 1}), Counter({"<end>": 2}))
    assert jsd_markov([(1, 2), (1,)], [(1,), (1,)]) == pytest.approx((2 * 0 + 2 * row1 + 1 * 1) / 5)


def test_uniq_align_and_leakage():
    assert uniq_align([(1,), (1,), (2,)], [(1,), (2,)]) == pytest.approx(1 / 3)
    assert leakage([(1,), (2,)], [(2,), (3,), (3,)]) == pytest.approx(1 / 3)
    assert leakage([(1,)], [(1,)]) == 1.0 and leakage([(1,)], [(2,)]) == 0.0


def test_every_metric_has_name_goal_and_range():
    assert [m.name for m in METRICS] == ["jsd_num_packets", "jsd_1gram", "jsd_2gram", "jsd_markov", "uniq_align", "leakage"]
    assert all(m.goal == "minimize" and m.range == (0.0, 1.0) for m in METRICS)


def _flows(rows, labels):
    N = max(len(r) for r in rows)
    return FlowSet.from_signed(np.array([list(r) + [0] * (N - len(r)) for r in rows]), labels)


def test_fidelity_is_per_class_and_macro_averaged():
    real = _flows([(1, 2), (1, 2), (5,), (5,)], ["a", "a", "b", "b"])
    synth = _flows([(1, 2), (1, 2), (-5,), (-5,)], ["a", "a", "b", "b"])
    result = fidelity(real, synth, train=real)
    assert result["per_class"]["a"]["jsd_1gram"] == 0 and result["per_class"]["b"]["jsd_1gram"] == 1
    assert result["macro"]["jsd_1gram"] == 0.5 and result["macro"]["leakage"] == 0.5
    assert set(result["macro"]) == {m.name for m in METRICS}


def test_fidelity_refuses_different_classes_or_packets():
    real = _flows([(1,), (2,)], ["a", "b"])
    with pytest.raises(NetsynthError, match=r"different classes: only real \['b'\], only synthetic \['c'\]"):
        fidelity(real, _flows([(1,), (2,)], ["a", "c"]))
    with pytest.raises(NetsynthError, match="N=1 packets, synthetic flows N=2"):
        fidelity(real, _flows([(1, 3), (2,)], ["a", "b"]))


def test_real_floor_puts_the_reference_set_in_the_place_of_the_synthetic_one():
    test = _flows([(1,), (2,), (3,), (1,)], ["a", "a", "b", "b"])
    train = _flows([(1,), (1,), (3,), (4,), (5,), (6,)], ["a", "a", "b", "b", "c", "c"])
    floor = real_floor(test, train)
    assert set(floor["per_class"]) == {"a", "b"}  # the classes of the test flows
    assert floor["per_class"]["a"]["jsd_1gram"] == pytest.approx(jsd_1gram([(1,), (2,)], [(1,), (1,)]))
    assert floor["per_class"]["b"]["leakage"] == pytest.approx(1 / 3)  # {3, 1} and {3, 4}: one shared of three
