"""The privacy audit on crafted cases whose answers are known, and the white-box score against a slow reference."""
import numpy as np
import pytest
import torch

import netsynth
from netsynth.flows import FlowSet
from netsynth.models.registry import KINDS
from netsynth.privacy import audit, copy_share


def draws(n_per_class: int, seed: int) -> FlowSet:
    """Flows of three classes that almost never repeat: random lengths, sizes around a class-specific mean."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for c in range(3):
        for _ in range(n_per_class):
            length = rng.integers(1, 11)
            sizes = np.clip(rng.normal(300 + 400 * c, 150, length), 1, 1500).astype(int)
            rows.append(list(sizes * rng.choice([1, -1], length)) + [0] * (10 - length))
            labels.append(f"c{c}")
    return FlowSet.from_signed(np.array(rows), labels)


def test_a_copier_is_caught_and_fresh_draws_are_not():
    train, test, fresh = draws(300, 0), draws(300, 1), draws(300, 2)
    copier = audit(train, test, train, seed=0)
    assert copier["exact_copies"] == 1.0 and copier["exact_copies_long"] == 1.0
    assert copier["dcr_closer_to_train"] > 0.95 and copier["black_box"]["auc"] > 0.95
    assert copier["black_box"]["tpr_at_1pct_fpr"] > 0.9
    honest = audit(train, test, fresh, seed=0)
    assert honest["exact_copies"] <= honest["exact_copies_base_rate"] + 0.01
    assert abs(honest["dcr_closer_to_train"] - 0.5) < 0.08 and abs(honest["black_box"]["auc"] - 0.5) < 0.08


def test_copy_share_counts_labelled_sequences_of_a_length():
    a = FlowSet.from_signed(np.array([[5, -6, 7, 8], [5, 0, 0, 0], [1, 2, 3, 4]]), ["x", "x", "y"])
    b = FlowSet.from_signed(np.array([[5, -6, 7, 8], [5, 0, 0, 0], [1, 2, 3, 4]]), ["x", "y", "x"])
    assert copy_share(a, b) == pytest.approx(1 / 3) and copy_share(a, b, min_length=4) == 0.5


@pytest.mark.parametrize("kind", ["llama", "mamba"])
def test_log_likelihood_equals_the_product_of_next_token_probabilities(kind):
    flows = draws(10, 0)
    model = netsynth.create(kind, **KINDS[kind].tiny, vocabulary="observed").fit(flows, epochs=1, batch_size=8)
    fast = model.log_likelihood(flows.take(np.arange(0, 30, 7)))
    ids = model.codec_.encode(flows)[np.arange(0, 30, 7)]
    for row, expected in zip(ids, fast):
        total = 0.0
        for t in range(1, len(row)):
            if row[t] == 0:  # <PAD>: the flow has ended
                break
            with torch.inference_mode():
                logits = model.module_(input_ids=torch.from_numpy(row[None, :t])).logits[0, -1].float()
            total += float(logits.log_softmax(-1)[row[t]])
        assert expected == pytest.approx(total, abs=1e-4)


def test_white_box_attack_on_a_model(small_train):
    train, test = small_train.split(test_size=0.3, seed=0)
    model = netsynth.create("llama", **KINDS["llama"].tiny, vocabulary="observed").fit(train, epochs=2, batch_size=16)
    test = test.select([c for c in test.present_counts() if c in train.present_counts()])
    result = audit(train, test, model.sample(train.present_counts(), seed=0),
                   log_likelihood=model.log_likelihood)
    assert 0 <= result["white_box"]["auc"] <= 1 and result["candidates"] == 2 * min(len(train), len(test))


def test_privacy_command(capsys, tmp_path):
    from test_cli_ingest import error_line, run
    train, test = draws(40, 0), draws(40, 1)
    train.write(tmp_path / "train.parquet")
    test.write(tmp_path / "test.parquet")
    args = ["privacy", "--train", str(tmp_path / "train.parquet"), "--test", str(tmp_path / "test.parquet"),
            "--synthetic", str(tmp_path / "train.parquet")]
    code, out, _ = run(capsys, *args, "-o", str(tmp_path / "p.json"))
    assert code == 0 and "exact copies of training flows 100.0 %" in out
    run(capsys, "train", "markov", str(tmp_path / "train.parquet"), "-o", str(tmp_path / "m"))
    code, out, _ = run(capsys, *args, "--model", str(tmp_path / "m"))
    assert code == 0 and "white box" in out
    run(capsys, "train", "smote", str(tmp_path / "train.parquet"), "-o", str(tmp_path / "s"))
    code, _, err = run(capsys, *args, "--model", str(tmp_path / "s"))
    assert "the white-box attack needs a model's likelihood; smote has none" in error_line(code, err)


def test_no_copies_redraws_training_copies(capsys, tmp_path):
    from test_cli_ingest import run
    from netsynth.privacy import copies
    # two flows per class that share their second packet: a Markov chain copies one or crosses over
    rows, labels = [], []
    for c in range(3):
        a = [100 + c, -200, 300 + c, -400, 500 + c]
        rows += [a + [0] * 5, [v + 10 if i != 1 else v for i, v in enumerate(a)] + [0] * 5] * 10
        labels += [f"c{c}"] * 20
    train = FlowSet.from_signed(np.array(rows), labels)
    train.write(tmp_path / "train.parquet")
    run(capsys, "train", "markov", str(tmp_path / "train.parquet"), "-o", str(tmp_path / "m"))
    plain = netsynth.load(tmp_path / "m").sample(n_per_class=20, seed=0)
    assert copies(plain, train).any()  # the case exists: some draws copy a training flow
    code, out, _ = run(capsys, "generate", str(tmp_path / "m"), "--per-class", "20", "--no-copies",
                       str(tmp_path / "train.parquet"), "-o", str(tmp_path / "g.parquet"))
    filtered = FlowSet.read(tmp_path / "g.parquet")
    assert code == 0 and f"redrew {int(copies(plain, train).sum())}" in out
    assert not copies(filtered, train).any() and filtered.class_counts() == plain.class_counts()
    same = ~copies(plain, train)
    assert (filtered.signed[same] == plain.signed[same]).all()  # flows that were no copies stay as they were


def test_cvae_score_is_its_evidence_lower_bound(small_train, monkeypatch):
    model = netsynth.create("cvae").fit(small_train, epochs=1, batch_size=16)
    flows = small_train.take(np.arange(5))
    score = model.log_likelihood(flows)
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)  # the sampled latent equals its mean
    ids, codes = model._tensors(flows)
    with torch.no_grad():
        (length_logits, value_logits), mu, logvar = model.module_(ids, torch.nn.functional.one_hot(codes, len(model.classes_)).float())
    for i in range(5):  # the plain formula, one flow at a time: -(length CE + value CEs + KL)
        n = int((ids[i] > 0).sum())
        rec = torch.nn.functional.cross_entropy(length_logits[i:i + 1], torch.tensor([n - 1]))
        rec = rec + sum(torch.nn.functional.cross_entropy(value_logits[i, p:p + 1], ids[i, p:p + 1] - 1) for p in range(n))
        kl = (-0.5 * (1 + logvar[i] - mu[i] ** 2 - logvar[i].exp())).sum()
        assert score[i] == pytest.approx(-float(rec + kl), rel=1e-5)


def test_markov_score_is_the_chain_probability_of_each_flow():
    """Known values: class a has 100 -200 twice and 100 300 once (N = 3): p(100 -200) = 1 x 2/3 x 1; a move the chain
    never makes scores NEVER, as do the moves into and out of a length it never saw; a flow of N packets draws no
    <END>."""
    from netsynth.models.markov import NEVER

    train = FlowSet.from_signed(np.array([[100, -200, 0], [100, -200, 0], [100, 300, 0], [7, 8, 9], [5, 0, 0]]),
                                ["a", "a", "a", "b", "b"])
    model = netsynth.create("markov").fit(train)
    asked = FlowSet.from_signed(np.array([[100, -200, 0], [100, 300, 0], [100, 0, 0], [100, 42, 0], [7, 8, 9]]),
                                ["a", "a", "a", "a", "b"], classes=train.classes)
    assert np.allclose(model.log_likelihood(asked),
                       [np.log(2 / 3), np.log(1 / 3), np.log(NEVER), 2 * np.log(NEVER), np.log(1 / 2)])


def test_markov_score_matches_what_it_samples_with_and_without_dp(small_train, monkeypatch):
    """The reference is the sampler itself: the share of each frequent flow among 20,000 draws is exp(score), for a
    plain chain, a DP one, and one whose release cut the row of class 0's most common first packet (its flows end
    there) and added a <START> -> <END> move (which the first step never draws)."""
    import netsynth.models.markov as markov

    S = 3001  # the states of a DP chain: every length up to 1,500, both directions, and <START>/<END>

    def cut(cells, values, *noise):
        start = (cells // (S * S) == 0) & (cells // S % S == 0)
        first = cells[start][np.argmax(values[start])] % S
        keep = ~((cells // (S * S) == 0) & (cells // S % S == first))
        out, weights = np.append(cells[keep], 0), np.append(values[keep], values[start].sum())
        return out[np.argsort(out)], weights[np.argsort(out)]

    models = [netsynth.create("markov").fit(small_train), netsynth.create("markov").fit(small_train, dp_epsilon=20.0)]
    monkeypatch.setattr(markov, "sparse_release", cut)
    models.append(netsynth.create("markov").fit(small_train, dp_epsilon=20.0))
    for model in models:
        klass = small_train.classes[0]
        flows = model.sample({klass: 20000}, seed=0)
        rows, counts = np.unique(flows.signed, axis=0, return_counts=True)
        top = np.argsort(counts)[-5:]
        p = np.exp(model.log_likelihood(FlowSet.from_signed(rows[top], [klass] * len(top), classes=small_train.classes)))
        share = counts[top] / 20000
        assert (np.abs(share - p) < 4 * np.sqrt(p * (1 - p) / 20000) + 1e-9).all(), (share, p)
