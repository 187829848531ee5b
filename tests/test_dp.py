"""Differentially private training (DP-SGD through Opacus): the budget kept, the accountant's own figure, a
loss that keeps each flow's gradient its own."""
import copy
import json
import math

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from torch.utils.data import DataLoader, TensorDataset

import netsynth
from netsynth.errors import NetsynthError
from netsynth.gaussian_mechanism import delta_of
from netsynth.models.markov import flow_weights
from netsynth.models.registry import KINDS
from netsynth.train import WithLoss, make_private
from test_cli_ingest import error_line, run


def tiny(kind):
    return netsynth.create(kind, **KINDS[kind].tiny)


@pytest.mark.parametrize("kind", ["llama", "mamba", "cvae"])
def test_budget_is_kept_and_matches_the_accountant(small_train, tmp_path, kind):
    model = tiny(kind).fit(small_train, epochs=2, batch_size=16, dp_epsilon=2.0)
    dp = model.privacy_
    assert dp["epsilon"] <= 2.0 and dp["delta"] == pytest.approx(1 / (10 * len(small_train)))
    accountant = RDPAccountant()  # the same noise, sampling rate and steps, accounted afresh
    accountant.history = [(dp["noise_multiplier"], dp["sample_rate"], dp["steps"])]
    assert accountant.get_epsilon(dp["delta"]) == pytest.approx(dp["epsilon"], rel=1e-9)
    again = netsynth.load(model.save(tmp_path / "m"))
    assert again.privacy_ == dp and json.loads((tmp_path / "m" / "config.json").read_text())["differential_privacy"] == dp
    assert len(again.sample(n_per_class=2, seed=0)) == 2 * len(small_train.classes)


@pytest.mark.parametrize("kind", ["llama", "mamba", "cvae"])
def test_private_loss_is_each_flows_own_loss(small_train, kind, monkeypatch):
    model = tiny(kind).fit(small_train, epochs=1, batch_size=16)
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)  # the CVAE's latent noise, the same alone and together
    batch = [t[:6] for t in model._tensors(small_train)]
    module = model.module_.eval()
    with torch.no_grad():
        together = model._private_loss(module, *batch)
        alone = torch.cat([model._private_loss(module, *(t[i:i + 1] for t in batch)) for i in range(6)])
    assert together.shape == (6,) and torch.allclose(together, alone, rtol=1e-5)


@pytest.mark.parametrize("kind", ["llama", "mamba", "cvae"])
def test_ghost_clipping_gives_the_update_of_per_flow_gradients(small_train, kind):
    """The fast path (ghost clipping: per-flow norms without per-flow gradients) against the reference (every
    per-flow gradient materialized): one DP-SGD step from the same weights with the same noise."""
    model = tiny(kind).fit(small_train, epochs=1, batch_size=16)
    batch = [t[:12] for t in model._tensors(small_train)]
    updates = []
    for mode in ("hooks", "ghost"):
        module = copy.deepcopy(model.module_).train()
        before = [p.detach().clone() for p in module.parameters()]
        _, wrapped, optimizer, criterion, _ = make_private(
            mode, module=WithLoss(module, model._private_loss),
            optimizer=torch.optim.SGD(module.parameters(), lr=1.0), data_loader=DataLoader(TensorDataset(*batch), 4),
            target_epsilon=4.0, target_delta=1e-5, epochs=1, max_grad_norm=0.5,
            noise_generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0)  # the CVAE's latent noise
        loss = criterion(wrapped(*batch))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if mode == "ghost":  # the clipping bound binds, so the per-flow norms decide the update
            assert wrapped.per_sample_gradient_norms.max() > 0.5
        with torch.no_grad():  # Opacus's per-flow gradients of an embedding ignore padding_idx, so the reference
            for layer in module.modules():  # moves the padding row, which autograd (ghost clipping) leaves alone
                if isinstance(layer, torch.nn.Embedding) and layer.padding_idx is not None:
                    layer.weight[layer.padding_idx] = 0
        updates.append(torch.cat([(p.detach() - b).flatten() for p, b in zip(module.parameters(), before)]))
    assert updates[0].abs().max() > 0
    assert torch.allclose(updates[0], updates[1], atol=1e-5)


@pytest.mark.parametrize("kind", ["llama", "cvae", "markov", "tables"])
def test_nothing_but_the_weights_depends_on_the_flows(small_train, tmp_path, kind):
    """Neighbouring training sets, one flow's lengths changed to a value no other flow has, give the same
    config.json: under DP only the weights learn from the flows, and only through DP-SGD (no lengths seen, no
    hash of the data)."""
    neighbour = small_train.take(np.arange(len(small_train)))
    neighbour.size[0, :neighbour.length[0]] = 1377
    assert not (small_train.size == 1377).any()
    configs = []
    for i, flows in enumerate((small_train, neighbour)):
        model = tiny(kind)
        epsilon = 20.0 if kind in ("markov", "tables") else 2.0  # at 2, no start of 120 flows stands out of the noise
        model.fit(flows, **model.used_train_options({"epochs": 1, "batch_size": 16}), dp_epsilon=epsilon).save(tmp_path / str(i))
        configs.append(json.loads((tmp_path / str(i) / "config.json").read_text()))
    assert configs[0] == configs[1] and configs[0]["data_hash"] is None
    with pytest.raises(NetsynthError, match="vocabulary 'observed' lists the lengths seen in training"):
        netsynth.create("llama", vocabulary="observed").fit(small_train, epochs=1, dp_epsilon=2.0)
    neighbour.meta["options"] = {**neighbour.meta.get("options", {}), "max_size": 1000}  # the vocabulary's bound
    with pytest.raises(NetsynthError, match="lengths above the declared max_size 1000: DP training takes its vocabulary"):
        tiny(kind).fit(neighbour, dp_epsilon=2.0)


def test_a_budget_not_kept_is_refused(small_train, monkeypatch):
    from opacus import PrivacyEngine
    monkeypatch.setattr(PrivacyEngine, "get_epsilon", lambda self, delta: 9.0)
    with pytest.raises(NetsynthError, match="DP training spent epsilon 9.000, above the 2 asked for"):
        tiny("cvae").fit(small_train, epochs=1, batch_size=16, dp_epsilon=2.0)


def test_cli_and_kinds_without_dp(capsys, small_train, tmp_path):
    small_train.write(tmp_path / "t.parquet")
    code, out, err = run(capsys, "train", "cvae", str(tmp_path / "t.parquet"), "-o", str(tmp_path / "m"), "--epochs", "1",
                         "--dp-epsilon", "3")
    assert code == 0 and "differentially private (epsilon" in out and "epsilon spent" in err
    code, out, _ = run(capsys, "train", "markov", str(tmp_path / "t.parquet"), "-o", str(tmp_path / "k"),
                       "--dp-epsilon", "20")
    assert code == 0 and "stored numbers" in out and "differentially private (epsilon 20.00" in out
    code, out, _ = run(capsys, "train", "tables", str(tmp_path / "t.parquet"), "-o", str(tmp_path / "p"),
                       "--dp-epsilon", "20")
    assert code == 0 and "differentially private (epsilon 20.00" in out
    for kind in ("diffusion", "smote"):  # refused, not ignored with a note as options that do not apply are
        code, _, err = run(capsys, "train", kind, str(tmp_path / "t.parquet"), "-o", str(tmp_path / "d"),
                           "--dp-epsilon", "3")
        assert f"{kind} does not train with differential privacy" in error_line(code, err)
    code, _, err = run(capsys, "train", "cvae", str(tmp_path / "t.parquet"), "-o", str(tmp_path / "m"), "--dp-epsilon", "3",
                       "--resume")
    assert "--resume is not available with --dp-epsilon" in error_line(code, err)


def test_markov_releases_its_counts_once_within_the_budget(small_train, tmp_path):
    model = netsynth.create("markov").fit(small_train, dp_epsilon=20.0, seed=3)
    dp = model.privacy_
    assert dp["epsilon"] == 20.0 and dp["delta"] == pytest.approx(1 / (10 * len(small_train)))
    assert delta_of(dp["noise_multiplier"], 20.0) <= dp["delta"]
    max_size = small_train.meta.get("options", {}).get("max_size", 1500)  # the states: every length, not those seen
    assert np.array_equal(model.values_, np.r_[-max_size:0, 1:max_size + 1])
    again = netsynth.load(model.save(tmp_path / "m"))
    assert again.privacy_ == dp and json.loads((tmp_path / "m" / "config.json").read_text())["data_hash"] is None
    counts = small_train.class_counts()
    assert np.array_equal(again.sample(counts, seed=1).signed, model.sample(counts, seed=1).signed)
    other = netsynth.create("markov").fit(small_train, dp_epsilon=20.0, seed=4)  # the noise follows the seed
    assert not np.array_equal(other.weights_[:50], model.weights_[:50])


def test_one_flow_moves_markov_counts_by_exactly_one(small_train):
    values = np.r_[-1500:0, 1:1501]
    cells, weights = flow_weights(small_train, values)
    full = dict(zip(cells.tolist(), weights))
    for i in (0, 7, len(small_train) - 1):
        without = small_train.take(np.delete(np.arange(len(small_train)), i))
        cells_i, weights_i = flow_weights(without, values)
        moved = dict(full)
        for c, w in zip(cells_i.tolist(), weights_i):
            moved[c] -= w
        assert math.sqrt(sum(v * v for v in moved.values())) == pytest.approx(1.0)


def test_markov_under_little_noise_keeps_every_transition(small_train):
    model = netsynth.create("markov").fit(small_train, dp_epsilon=1e4)
    S = len(model.values_) + 1
    cells, weights = flow_weights(small_train, model.values_)
    released = dict(zip(((model.transitions_ @ np.array([S * S, S, 1])).tolist()), model.weights_))
    sigma = model.privacy_["noise_multiplier"]
    assert sigma < 0.01 and np.allclose([released[c] for c in cells.tolist()], weights, atol=6 * sigma)


def test_markov_starts_from_all_classes_where_a_class_start_did_not_survive(small_train, monkeypatch):
    import netsynth.models.markov as markov

    release = markov.sparse_release
    S = 3001

    def without_class_1_starts(cells, *args):
        out, values = release(cells, *args)
        keep = ~((out // (S * S) == 1) & (out // S % S == 0))
        return out[keep], values[keep]

    monkeypatch.setattr(markov, "sparse_release", without_class_1_starts)
    model = netsynth.create("markov").fit(small_train, dp_epsilon=50.0)
    rows = model.transitions_[model.transitions_[:, 1] == 0]
    pooled = np.unique(rows[rows[:, 0] != 1, 2])
    assert np.array_equal(rows[rows[:, 0] == 1, 2], pooled)
    first = model.sample({small_train.classes[1]: 50}, seed=0).signed[:, 0]
    assert set(first.tolist()) <= set(model.values_[pooled - 1].tolist())
    monkeypatch.setattr(markov, "sparse_release", lambda cells, values, *a: (cells[:0], values[:0]))
    with pytest.raises(NetsynthError, match="markov: no flow start survived the noise at epsilon 50"):
        netsynth.create("markov").fit(small_train, dp_epsilon=50.0)
