"""Codec round trips: tokens and GASF images are exact inverses on every flow (property tests and real data)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import SHARED_DATA, requires_shared
from netsynth import FlowSet, NetsynthError
from netsynth.codecs import gasf
from netsynth.codecs.tokens import EOS, PAD, TokenCodec


@st.composite
def flowsets(draw, max_size=1500):
    N = draw(st.integers(1, 16))
    n = draw(st.integers(1, 20))
    rows = []
    for _ in range(n):
        length = draw(st.integers(1, N))
        values = draw(st.lists(st.integers(1, max_size), min_size=length, max_size=length))
        signs = draw(st.lists(st.sampled_from([-1, 1]), min_size=length, max_size=length))
        rows.append([v * s for v, s in zip(values, signs)] + [0] * (N - length))
    labels = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))
    return FlowSet.from_signed(np.array(rows), labels, classes=["a", "b", "c"])


@given(flowsets(), st.sampled_from(["full", "observed"]))
@settings(max_examples=60, deadline=None)
def test_tokens_round_trip(flows, vocabulary):
    codec = TokenCodec.fit(flows, 1500, vocabulary)
    tokens = codec.encode(flows)
    assert tokens.shape == (len(flows), flows.n_packets + 2)
    assert (tokens[:, 0] == codec.class_token(flows.codes)).all()
    assert (tokens[np.arange(len(flows)), flows.length + 1] == EOS).all()
    assert codec.decode(tokens[:, 1:], flows.codes).equals(flows)


@pytest.mark.parametrize("log", [False, True])
@given(flows=flowsets())
@settings(max_examples=60, deadline=None)
def test_gasf_round_trip(flows, log):
    images = gasf.to_gasf(flows.signed, 1500, log)
    assert images.dtype == np.float32 and images.shape == (len(flows), flows.n_packets, flows.n_packets)
    assert np.allclose(images, images.transpose(0, 2, 1)) and np.abs(images).max() <= 1
    assert np.array_equal(gasf.from_gasf(images, 1500, log), flows.signed)


def test_log_scale_keeps_small_packets_apart_under_noise():
    signed = np.array([[60, -90, 40, 1400, -1460]])
    noise = np.random.default_rng(0).normal(0, 0.01, (1, 5, 5))
    error = {log: np.abs(gasf.from_gasf(gasf.to_gasf(signed, 1500, log) + noise, 1500, log) - signed)[0] for log in (False, True)}
    assert (error[True][:3] < error[False][:3]).all()  # small sizes: finer; large ones: coarser (relative)


def test_full_vocabulary_layout_is_the_papers():
    codec = TokenCodec(("a", "b"), 10, 1500)
    assert codec.vocab_size == 3 + 2 + 2 * 1500
    assert codec.length_tokens(np.array([-1500, -1, 1, 1500])).tolist() == [5, 5 + 1499, 5 + 1500, 5 + 2999]
    flows = FlowSet.from_signed(np.array([[7, -9, 0]]), ["b"], classes=["a", "b"])
    short = TokenCodec(("a", "b"), 3, 1500)
    assert short.encode(flows)[0].tolist() == [4, 5 + 1500 + 6, 5 + 1500 - 9, EOS, PAD]


def test_gasf_inverse_uses_the_whole_image():
    """Noise on the diagonal alone barely moves the least-squares inverse, unlike a diagonal-only read."""
    flows = FlowSet.from_signed(np.array([[300, -1200, 40, 0, 0]]), ["a"])
    img = gasf.to_gasf(flows.signed, 1500).astype(np.float64)
    noisy = img.copy()
    noisy[0, np.arange(5), np.arange(5)] += 0.02
    assert np.abs(gasf.from_gasf(noisy, 1500) - flows.signed).max() <= 60
    diagonal_only = gasf.unscale(np.cos(np.arccos(np.clip(np.diagonal(noisy, axis1=1, axis2=2), -1, 1)) / 2), 1500)
    assert np.abs(diagonal_only - flows.signed).max() > np.abs(gasf.from_gasf(noisy, 1500) - flows.signed).max()


def test_flow_length_is_the_one_that_contradicts_the_fewest_values():
    real = np.array([[1, 1, 1, 0, 1, 1], [1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [1, 0, 1, 0, 0, 0]], bool)
    assert gasf.flow_lengths(real).tolist() == [6, 2, 1, 3]  # last: 1 or 3 contradict one value each; the longer


def test_a_noisy_large_download_packet_does_not_end_the_flow():
    """-1,500 bytes scales to PAD_GAP, just above the padding: noise there once cut generated flows short."""
    signed = np.array([[300, -1500, -1500, 120, -1500, -1500, 90, -1500]])
    phi = np.arccos(gasf.scale(signed, 1500))
    phi[0, 2] = np.pi / 2  # the third packet drawn as padding, its row and column consistent with that
    back = gasf.from_gasf(np.cos(phi[:, :, None] + phi[:, None, :]), 1500)
    assert (back != 0).all() and np.abs(back - signed).max() <= 60


def test_zero_payload_packets_have_no_token():
    flows = FlowSet.from_labels([[0, 5]], [[1, -1]], ["a"])
    with pytest.raises(NetsynthError, match="without zero-payload packets"):
        TokenCodec.fit(flows, 1500)


@requires_shared
@pytest.mark.parametrize("vocabulary", ["full", "observed"])
def test_round_trips_on_every_flow_of_the_shared_datasets(vocabulary, iot_flows):
    from netsynth.ingest import TableColumns, ingest
    sets = [iot_flows, ingest([SHARED_DATA / "mirage2019-sample"])[0]]
    for name in ("cicdoh20", "tiissrc23"):
        sets.append(ingest([SHARED_DATA / name / "test.json", SHARED_DATA / name / "valid.json"],
                           label_from="column:label", columns=TableColumns(sequence="direction_length"))[0])
    for flows in sets:
        codec = TokenCodec.fit(flows, 1500, vocabulary)
        back = codec.decode(codec.encode(flows)[:, 1:], flows.codes)
        assert np.array_equal(back.signed, flows.signed) and list(back.label) == list(flows.label)
        assert np.array_equal(gasf.from_gasf(gasf.to_gasf(flows.signed, 1500), 1500), flows.signed)
