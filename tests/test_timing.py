"""Timing: the empirical per-class timing model every kind can carry, and the timing fidelity metrics."""
import numpy as np
import pytest

import netsynth
from netsynth import FlowSet, NetsynthError
from netsynth.timing import (N_BINS, EmpiricalTiming, bins, class_bias, class_histograms, jsd_duration, jsd_log_iat,
                             timing_fidelity)


def timed_flows(n=400, seed=0) -> FlowSet:
    """Class "rpc": request up, reply down after ~1 ms, next request after ~1 s; class "bulk": every gap ~10 ms.
    Each gap stays inside one bin (5 per decade: 1.2 x 10^k +- 5 %)."""
    rng = np.random.default_rng(seed)
    signed = np.tile([100, -200, 100, -200, 0], (2 * n, 1))
    iat = np.zeros(signed.shape, np.float32)
    iat[:n, 1:4] = np.array([1.2e-3, 1.2, 1.2e-3]) * rng.uniform(0.95, 1.05, (n, 3))
    iat[n:, 1:4] = 1.2e-2 * rng.uniform(0.95, 1.05, (n, 3))
    return FlowSet.from_signed(signed, ["rpc"] * n + ["bulk"] * n, iat=iat)


def test_empirical_timing_draws_each_class_position_and_direction_pair_from_its_own_histogram():
    train = timed_flows()
    model = EmpiricalTiming.fit(train)
    drawn = model.draw(train, seed=0)
    assert drawn.dtype == np.float32 and drawn.shape == train.size.shape
    assert (drawn[:, 0] == 0).all() and (drawn[:, 4] == 0).all()  # first packet and padding
    assert np.array_equal(bins(drawn[:, 1:4]), bins(train.iat[:, 1:4]))  # narrow real spreads: the same bins
    assert np.array_equal(drawn, model.draw(train, seed=0)) and not np.array_equal(drawn, model.draw(train, seed=1))
    rpc_gap = drawn[:400, 2]
    assert 0.5 < rpc_gap.min() and rpc_gap.max() < 2  # down -> up in class rpc: about a second


def test_timing_metrics_known_values():
    a = timed_flows()
    assert jsd_log_iat(a, a) == 0 and jsd_duration(a, a) == 0
    slow = FlowSet.from_signed(a.signed, list(a.label), iat=a.iat * 1e4)
    assert jsd_log_iat(a.select(["bulk"]), slow.select(["bulk"])) == 1  # four decades apart: disjoint bins
    scores = timing_fidelity(a, slow)
    assert set(scores["macro"]) == {"jsd_log_iat", "jsd_duration"} and scores["macro"]["jsd_log_iat"] == 1
    untimed = FlowSet.from_signed(a.signed, list(a.label))
    assert timing_fidelity(a, untimed) is None


def test_every_kind_trained_with_timing_samples_timed_flows_that_survive_save_and_load(tmp_path):
    train = timed_flows(60)
    model = netsynth.create("markov").fit(train, timing=True)
    synth = model.sample(n_per_class=50, seed=3)
    assert synth.iat is not None and (synth.iat[synth.direction == 0] == 0).all()
    untimed = netsynth.create("markov").fit(train).sample(n_per_class=50, seed=3)
    assert untimed.iat is None and np.array_equal(synth.signed, untimed.signed)  # timing draws from a stream of its own
    back = netsynth.load(model.save(tmp_path / "m")).sample(n_per_class=50, seed=3)
    assert np.array_equal(back.iat, synth.iat)
    (tmp_path / "m" / "timing.safetensors").unlink()
    with pytest.raises(NetsynthError, match="config.json names a timing model but timing.safetensors is missing"):
        netsynth.load(tmp_path / "m")
    assert timing_fidelity(train, synth)["macro"]["jsd_log_iat"] < 0.1
    with pytest.raises(NetsynthError, match="the training flows carry no inter-arrival times"):
        netsynth.create("markov").fit(untimed, timing=True)


def test_services_are_drawn_per_class_in_proportion_and_saved(tmp_path):
    train = timed_flows(100)
    train.service = np.array([[6, 443]] * 75 + [[17, 443]] * 25 + [[17, 53]] * 100, np.int32)
    model = netsynth.create("markov").fit(train, timing=True)
    synth = model.sample(n_per_class=2000, seed=0)
    rpc, bulk = synth.service[synth.label == "rpc"], synth.service[synth.label == "bulk"]
    assert set(map(tuple, bulk.tolist())) == {(17, 53)}
    assert abs(np.mean(rpc[:, 0] == 6) - 0.75) < 0.03 and set(rpc[:, 1].tolist()) == {443}
    assert np.array_equal(netsynth.load(model.save(tmp_path / "m")).sample(n_per_class=2000, seed=0).service, synth.service)


def test_train_with_timing_then_generate_and_evaluate_from_the_command_line(capsys, demo_flows, tmp_path):
    from test_cli_ingest import run
    train, test = demo_flows.split(test_size=0.3, seed=0)
    train.write(tmp_path / "train.parquet")
    test.write(tmp_path / "test.parquet")
    code, out, _ = run(capsys, "train", "markov", str(tmp_path / "train.parquet"), "-o", str(tmp_path / "m"), "--timing")
    assert code == 0 and (tmp_path / "m" / "timing.safetensors").is_file()
    code, _, _ = run(capsys, "generate", str(tmp_path / "m"), "--like", str(tmp_path / "train.parquet"), "-o",
                     str(tmp_path / "s.parquet"))
    assert code == 0 and FlowSet.read(tmp_path / "s.parquet").iat is not None
    code, out, _ = run(capsys, "evaluate", "--real", str(tmp_path / "test.parquet"), "--train", str(tmp_path / "train.parquet"),
                       "--synthetic", str(tmp_path / "s.parquet"))
    assert code == 0 and "jsd_log_iat" in out and "jsd_duration" in out
    assert "TSTR macro F1 with timing features: train on synthetic" in out


def test_timing_features_let_tstr_tell_classes_apart_that_differ_only_in_timing():
    from netsynth.tasks.tstr import features, tstr

    train, test = timed_flows(seed=0), timed_flows(n=100, seed=1)
    with_timing = features(train, timing=True)
    assert with_timing.shape == (len(train), 2 * train.n_packets)
    assert np.allclose(with_timing[:, train.n_packets:], np.log1p(1e6 * train.iat))
    scores = tstr(train, test, train, timing=True)  # the real flows as their own "synthetic" set
    assert scores["train_on_real"] < 0.7  # the same lengths in both classes: near chance (0.5)
    assert scores["train_on_real_timing"] == scores["train_on_synthetic_timing"] == 1.0


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_class_bias_tilts_each_class_mean_prediction_to_its_target():
    rng = np.random.default_rng(0)
    codes = np.repeat([0, 1, 3], [300, 200, 100])  # class 2 has no packets
    logits = rng.normal(0, 2, (len(codes), N_BINS))
    target = np.zeros((4, N_BINS))
    target[0, [16, 17, 30]] = [0.5, 0.3, 0.2]
    target[1, [20, 21]] = [0.9, 0.1]
    target[2, 5] = 1.0
    bias = class_bias(logits, codes, target)  # class 3: no target, class 2: no packets
    assert bias.shape == (4, N_BINS) and (bias[2] == 0).all() and (bias[3] == 0).all()
    for c in (0, 1):
        assert np.abs(softmax(logits[codes == c] + bias[c]).mean(0) - target[c]).max() < 1e-4
        assert np.isneginf(bias[c][target[c] == 0]).all()
    flat = class_bias(np.zeros((len(codes), N_BINS)), codes, target)  # a uniform head: the log of the target
    assert np.allclose(flat[0, [16, 17, 30]], np.log(target[0, [16, 17, 30]] / 0.5), atol=1e-4)


def test_class_histograms_count_every_gap_after_a_first_packet():
    train = timed_flows(10)
    h = class_histograms(train)
    rpc = train.classes.index("rpc")
    assert h.shape == (2, N_BINS) and np.allclose(h.sum(1), 1)
    assert np.isclose(h[rpc, bins(1.2e-3)], 2 / 3) and np.isclose(h[rpc, bins(1.2)], 1 / 3)


def test_a_barely_trained_gap_head_still_gives_each_class_its_real_gap_histogram():
    from netsynth.models.registry import KINDS
    train = timed_flows(200)
    model = netsynth.create("llama", **KINDS["llama"].tiny).fit(train, timing=True, epochs=1, min_steps=20, batch_size=64)
    calibrated = timing_fidelity(train, model.sample(n_per_class=400, seed=1))["macro"]["jsd_log_iat"]
    model.module_.iat_bias.zero_()
    raw = timing_fidelity(train, model.sample(n_per_class=400, seed=1))["macro"]["jsd_log_iat"]
    assert calibrated < 0.02 < 0.2 < raw


def test_learning_gaps_leaves_the_size_model_and_its_early_stopping_as_without_timing():
    from netsynth.models.registry import KINDS
    train = timed_flows(200)
    timed = netsynth.create("llama", **KINDS["llama"].tiny).fit(train, timing=True, epochs=2, batch_size=64)
    plain = netsynth.create("llama", **KINDS["llama"].tiny).fit(train, epochs=2, batch_size=64)
    # the same up to gradient clipping, whose norm counts the head's gradients too; a loss with the gap term's
    # value in it would differ by that value
    assert np.allclose(timed.history_["val_loss"], plain.history_["val_loss"], rtol=1e-3)


@pytest.mark.parametrize("kind", ["llama", "mamba"])
def test_sequence_models_learn_gaps_with_a_head_of_their_own(kind, tmp_path):
    from netsynth.models.registry import KINDS
    train = timed_flows(200)
    model = netsynth.create(kind, **KINDS[kind].tiny).fit(train, timing=True, epochs=1, min_steps=300, batch_size=64,
                                                          patience=99, lr=3e-3)  # 300 steps, fast
    assert model.timing_ is None and "iat_head.weight" in model.module_.state_dict()
    synth = model.sample(n_per_class=300, seed=0)
    assert (synth.iat[:, 0] == 0).all() and (synth.iat[synth.direction == 0] == 0).all()
    assert timing_fidelity(train, synth)["macro"]["jsd_log_iat"] < 0.05  # untrained: about 0.9
    back = netsynth.load(model.save(tmp_path / "m"))
    assert np.array_equal(back.sample(n_per_class=300, seed=0).iat, synth.iat)
    with pytest.raises(NetsynthError, match="--timing with --dp-epsilon"):
        netsynth.create(kind, **KINDS[kind].tiny).fit(train, timing=True, dp_epsilon=4.0)
