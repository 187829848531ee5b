"""How the CVAE samples. It draws z from a Gaussian per class with the moments of its training flows' aggregate
posterior (ex-post density estimation, Ghosh et al. 2020); N(0, I) with prior="standard", under DP, and for models
saved before it. Its length and packets come from its categoricals at the temperature asked for."""
import json
import warnings

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

import netsynth
from netsynth import NetsynthError
from netsynth.models.cvae import class_gaussians, draw_categorical
from netsynth.models.options import NetsynthNote
from test_models import TINY


def test_class_gaussians_have_the_moments_of_each_class_aggregate_posterior():
    rng = np.random.default_rng(0)
    a = rng.multivariate_normal([1.0, -2.0, 0.5], [[2.0, 0.3, 0.0], [0.3, 1.0, -0.4], [0.0, -0.4, 0.5]], size=400)
    b = rng.normal(size=(1, 3))  # one flow: its own posterior
    mu = torch.from_numpy(np.concatenate([a, b])).float()
    var = torch.from_numpy(rng.uniform(0.01, 0.2, size=(len(mu), 3))).float()
    codes = np.array([0] * len(a) + [2])
    mean, scale = class_gaussians(mu, var.log(), codes, n_classes=3)
    np.testing.assert_allclose(mean[0].numpy(), a.mean(0), rtol=1e-5, atol=1e-5)
    expected = np.cov(a.T, bias=True) + np.diag(var[:len(a)].double().mean(0).numpy())
    np.testing.assert_allclose((scale[0] @ scale[0].T).numpy(), expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(scale[0], scale[0].tril())
    np.testing.assert_allclose(mean[2].numpy(), b[0], rtol=1e-6)
    np.testing.assert_allclose((scale[2] @ scale[2].T).numpy(), np.diag(var[-1].numpy()), rtol=1e-5, atol=1e-7)
    assert torch.equal(mean[1], torch.zeros(3)) and torch.equal(scale[1], torch.eye(3))  # no flow: N(0, I)


@pytest.fixture(scope="module")
def models(small_train):
    return {prior: netsynth.create("cvae", **TINY["cvae"], prior=prior).fit(small_train, epochs=2, batch_size=16, seed=0)
            for prior in ("class-posterior", "standard")}


def test_the_fitted_prior_is_the_gaussian_of_each_class_of_encoded_training_flows(models, small_train):
    model = models["class-posterior"]
    mean, scale = class_gaussians(*model.encoded(small_train), small_train.codes, len(model.classes_))
    assert torch.allclose(model.module_.prior_mean, mean) and torch.allclose(model.module_.prior_scale, scale)
    standard = models["standard"].module_
    assert not standard.prior_mean.any() and torch.equal(standard.prior_scale, torch.eye(standard.latent).expand_as(standard.prior_scale))


def test_a_model_saved_before_the_prior_loads_and_samples_from_the_standard_normal(models, tmp_path):
    folder = models["standard"].save(tmp_path / "old")
    state = load_file(str(folder / "model.safetensors"))
    save_file({k: v for k, v in state.items() if not k.startswith("prior_")}, str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    del config["settings"]["prior"]
    (folder / "config.json").write_text(json.dumps(config))
    old = netsynth.load(folder)
    assert old.config.prior == "standard"
    counts = {c: 20 for c in old.classes_}
    assert np.array_equal(old.sample(counts, seed=3).signed, models["standard"].sample(counts, seed=3).signed)


def test_dp_training_keeps_the_standard_normal(small_train, tmp_path):
    model = netsynth.create("cvae", **TINY["cvae"]).fit(small_train, epochs=1, batch_size=16, dp_epsilon=2.0)
    assert not model.module_.prior_mean.any()
    saved = json.loads((model.save(tmp_path / "dp") / "config.json").read_text())
    assert model.config.prior == saved["settings"]["prior"] == "standard"  # the config says what sampling does


def test_an_unknown_prior_is_refused():
    with pytest.raises(NetsynthError, match="prior must be one of class-posterior, standard, got 'flat'"):
        netsynth.create("cvae", prior="flat")


def test_sampling_draws_z_from_each_class_gaussian(models, monkeypatch):
    model = models["class-posterior"]
    module, seen = model.module_, []
    decode = module.decode
    monkeypatch.setattr(module, "decode", lambda z, onehot: seen.append(z.clone()) or decode(z, onehot))
    n_classes, latent = module.prior_mean.shape
    # setitem, not setattr: undoing a setattr on a module deletes the buffer (pytest 9.2), and the fixture is shared
    monkeypatch.setitem(module._buffers, "prior_mean", torch.arange(n_classes * latent, dtype=torch.float32).view(n_classes, latent))
    monkeypatch.setitem(module._buffers, "prior_scale", 2 * torch.eye(latent).repeat(n_classes, 1, 1))
    flows = model.sample({c: 3 for c in model.classes_}, seed=5)
    eps = torch.randn((len(flows), latent), generator=torch.Generator().manual_seed(5))  # the sampler's first draw
    expected = module.prior_mean[torch.from_numpy(flows.codes.astype(np.int64))] + 2 * eps
    torch.testing.assert_close(seen[0], expected)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_draw_categorical_draws_from_the_tempered_softmax(temperature):
    logits = np.array([2.0, 0.0, -1.0, 1.0])
    expected = np.exp(logits / temperature) / np.exp(logits / temperature).sum()  # the plain formula
    rows = torch.from_numpy(logits).float().expand(5000, 3, 4)  # [flows, packets, values], as the packet heads
    draws = draw_categorical(rows, temperature, torch.Generator().manual_seed(0))
    assert draws.shape == (5000, 3)
    seen = np.bincount(draws.flatten().numpy(), minlength=4) / draws.numel()
    np.testing.assert_allclose(seen, expected, atol=4 * np.sqrt(0.25 / draws.numel()))


def test_a_temperature_near_zero_draws_each_categorical_s_most_likely_value(models, monkeypatch):
    model = models["class-posterior"]
    module, seen = model.module_, []
    decode = module.decode
    monkeypatch.setattr(module, "decode", lambda z, onehot: seen.append((z.clone(), onehot)) or decode(z, onehot))
    counts = {c: 20 for c in model.classes_}
    with warnings.catch_warnings():
        warnings.simplefilter("error", NetsynthNote)  # the option is used, not dropped with a note
        cold = model.sample(counts, seed=1, temperature=1e-4)
    length_logits, value_logits = decode(*seen[0])
    expected = model.values_[value_logits.argmax(-1).numpy()]
    expected[np.arange(model.n_packets_) >= length_logits.argmax(-1).numpy()[:, None] + 1] = 0
    np.testing.assert_array_equal(cold.signed, expected)
    hot = model.sample(counts, seed=1)
    assert len(np.unique(hot.signed, axis=0)) > len(np.unique(cold.signed, axis=0))
    with pytest.raises(NetsynthError, match="temperature must be positive, got 0"):
        model.sample(counts, seed=1, temperature=0)
