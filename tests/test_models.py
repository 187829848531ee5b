"""One conformance test run over every registered generator kind, with tiny settings."""
import json

import numpy as np
import pytest

import netsynth
from conftest import requires_cuda
from netsynth import FlowSet, NetsynthError
from netsynth.models.registry import KINDS as REGISTERED

KINDS = list(REGISTERED)
TINY = {kind: REGISTERED[kind].tiny for kind in KINDS}


def fit_tiny(kind, train, **options):
    """A tiny model of `kind`, trained for 2 epochs where it trains in epochs."""
    options = {"epochs": 2, **options} if REGISTERED[kind].trains else options
    return netsynth.create(kind, **TINY[kind]).fit(train, **options)


@pytest.fixture(scope="module")
def fitted(small_train):
    return {kind: fit_tiny(kind, small_train) for kind in KINDS}


def assert_valid(flows: FlowSet, N: int, max_size: int):
    real = flows.direction != 0
    assert flows.n_packets == N
    assert ((flows.length >= 1) & (flows.length <= N)).all()
    assert np.isin(flows.direction[real], (-1, 1)).all()
    assert ((flows.size[real] >= 1) & (flows.size[real] <= max_size)).all()
    assert (flows.size[~real] == 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_sample_gives_valid_flows_with_requested_counts(kind, fitted, small_train):
    model = fitted[kind]
    assert model.classes_ == small_train.classes
    counts = {small_train.classes[0]: 7, small_train.classes[2]: 3}
    synth = model.sample(counts, seed=1)
    assert synth.present_counts() == counts
    assert_valid(synth, small_train.n_packets, 1500)
    every = model.sample(n_per_class=5, seed=1)
    assert every.class_counts() == {c: 5 for c in small_train.classes}


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_flows_other_seed_other_flows(kind, fitted):
    model = fitted[kind]
    a, b = model.sample(n_per_class=20, seed=3), model.sample(n_per_class=20, seed=3)
    assert a.equals(b)
    assert not np.array_equal(a.signed, model.sample(n_per_class=20, seed=4).signed)


@pytest.mark.parametrize("kind", KINDS)
def test_save_then_load_gives_identical_flows(kind, fitted, tmp_path):
    model = fitted[kind]
    model.save(tmp_path / kind)
    config = json.loads((tmp_path / kind / "config.json").read_text())
    assert config["kind"] == kind and config["classes"] == list(model.classes_) and config["data_hash"]
    assert sorted(p.name for p in (tmp_path / kind).iterdir()) == ["config.json", "model.safetensors"]
    again = netsynth.load(tmp_path / kind)
    assert type(again) is type(model)
    assert again.sample(n_per_class=10, seed=5).equals(model.sample(n_per_class=10, seed=5))


@pytest.mark.parametrize("kind", KINDS)
def test_unfitted_model_raises_a_clear_error(kind):
    with pytest.raises(NetsynthError, match=f"this {kind} model is not fitted"):
        netsynth.create(kind).sample(n_per_class=1)


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_class_is_refused(kind, fitted):
    with pytest.raises(NetsynthError, match=r"class\(es\) \['Toaster'\] were not in the training data"):
        fitted[kind].sample({"Toaster": 3})


@pytest.mark.parametrize("kind", ["markov", "llama"])
def test_empty_or_single_class_training_set_is_refused(kind, small_train):
    one = small_train.select([small_train.classes[0]])
    with pytest.raises(NetsynthError, match="at least two"):
        fit_tiny(kind, one)
    with pytest.raises(NetsynthError, match="empty"):
        fit_tiny(kind, small_train.take([]))


def test_same_seed_trains_the_same_model(small_train):
    a = fit_tiny("llama", small_train, seed=7)
    b = fit_tiny("llama", small_train, seed=7)
    for (k, va), vb in zip(a._state().items(), b._state().values()):
        assert np.array_equal(va, vb), k


@pytest.mark.parametrize("kind", ["llama", "mamba"])
def test_a_class_balanced_loss_is_the_loss_of_classes_oversampled_to_one_count(kind):
    """Three flows of a and one of b: b's flow weighs 3 times each of a's, as three copies of it would."""
    import torch
    train = FlowSet.from_signed(np.array([[100, -60, 0], [120, -60, 40], [100, 0, 0], [-300, 200, 0]]), ["a"] * 3 + ["b"])
    model = netsynth.create(kind, **TINY[kind], class_balance=True).fit(train, epochs=1)
    ids = torch.from_numpy(model.codec_.encode(train))
    with torch.no_grad():
        balanced = model._loss(model.module_, ids)
        model._token_weights = None
        oversampled = model._loss(model.module_, ids[[0, 1, 2, 3, 3, 3]])
        plain = model._loss(model.module_, ids)
    assert torch.allclose(balanced, oversampled, atol=1e-6) and not torch.allclose(balanced, plain, atol=1e-4)
    with pytest.raises(NetsynthError, match="class_balance weighs flows by their class's count"):
        netsynth.create(kind, **TINY[kind], class_balance=True).fit(train, epochs=1, dp_epsilon=4)


def test_unknown_kind_and_setting_list_the_valid_ones():
    with pytest.raises(NetsynthError, match="unknown model kind 'gpt'; known kinds: cvae, diffusion, fast-retransmit"):
        netsynth.create("gpt")
    with pytest.raises(NetsynthError, match=r"unknown setting\(s\) \['hidden'\] for llama; valid: \[.*'hidden_size'"):
        netsynth.create("llama", hidden=3)


def test_corrupt_or_foreign_model_folder(tmp_path, fitted):
    with pytest.raises(NetsynthError, match="not a netsynth model folder"):
        netsynth.load(tmp_path)
    fitted["markov"].save(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(NetsynthError, match="damaged weights"):
        netsynth.load(tmp_path / "m")
    fitted["llama"].save(tmp_path / "l")
    (tmp_path / "l" / "config.json").write_text(json.dumps({"kind": "toaster"}))
    with pytest.raises(NetsynthError, match="unknown model kind 'toaster'"):
        netsynth.load(tmp_path / "l")
    fitted["llama"].save(tmp_path / "l")
    fitted["markov"].save(tmp_path / "x")
    (tmp_path / "l" / "model.safetensors").write_bytes((tmp_path / "x" / "model.safetensors").read_bytes())
    with pytest.raises(NetsynthError, match="do not match a llama model"):
        netsynth.load(tmp_path / "l")


def test_a_markov_chain_saved_with_counts_in_its_table_loads(tmp_path, fitted):
    """Before DP, a chain kept its counts as a fourth column of `transitions` and had no `weights`."""
    from safetensors.numpy import load_file, save_file

    model = fitted["markov"]
    folder = model.save(tmp_path / "m")
    state = load_file(str(folder / "model.safetensors"))
    counts = state.pop("weights").astype(np.int64)[:, None]
    save_file({**state, "transitions": np.hstack([state["transitions"], counts])}, str(folder / "model.safetensors"))
    old = netsynth.load(folder)
    counts = {c: 20 for c in model.classes_}
    assert np.array_equal(old.sample(counts, seed=2).signed, model.sample(counts, seed=2).signed)


def test_cuda_device_without_a_gpu_is_refused(small_train):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(NetsynthError, match="no CUDA GPU is available"):
        fit_tiny("cvae", small_train, device="cuda")


def test_resume_continues_from_the_last_checkpoint(small_train, tmp_path):
    full = fit_tiny("cvae", small_train, epochs=3, patience=99, checkpoint_dir=tmp_path / "a")
    fit_tiny("cvae", small_train, epochs=2, patience=99, checkpoint_dir=tmp_path / "b")
    state = json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1 and len(state["history"]["train_loss"]) == 2
    resumed = fit_tiny("cvae", small_train, epochs=3, patience=99, checkpoint_dir=tmp_path / "b", resume=True)
    assert resumed.history_["epochs"] == [1, 2, 3] and len(full.history_["epochs"]) == 3
    fit_tiny("cvae", small_train, epochs=2, patience=99, checkpoint_dir=tmp_path / "c")
    (tmp_path / "c" / "checkpoint" / "random.safetensors").unlink()  # as netsynth 0.1 wrote them
    old = fit_tiny("cvae", small_train, epochs=3, patience=99, checkpoint_dir=tmp_path / "c", resume=True)
    assert old.history_["epochs"] == [1, 2, 3]
    with pytest.raises(NetsynthError, match="no checkpoint"):
        fit_tiny("cvae", small_train, checkpoint_dir=tmp_path / "none", resume=True)


def test_min_steps_raises_the_epoch_cap_on_a_small_set_and_explicit_epochs_keep_theirs(small_train):
    from netsynth.models.options import TrainSettings
    assert TrainSettings(epochs=30, patience=5, min_steps=2000).budget(steps_per_epoch=4) == (500, 50)
    assert TrainSettings(epochs=30, patience=5, min_steps=2000).budget(steps_per_epoch=100) == (30, 5)
    batch = len(small_train) // 2  # an epoch of 2 steps (after the validation hold-out)
    raised = fit_tiny("cvae", small_train, epochs=1, min_steps=8, batch_size=batch, patience=99)
    assert raised.history_["epochs"] == [1, 2, 3, 4]
    assert len(fit_tiny("cvae", small_train, batch_size=batch, patience=99).history_["epochs"]) == 2


def test_checkpoints_every_so_many_seconds_and_after_the_last_epoch(small_train, tmp_path, monkeypatch):
    import netsynth.train
    saved = []
    write = netsynth.train._save_checkpoint
    monkeypatch.setattr(netsynth.train, "_save_checkpoint", lambda *a: saved.append(a[-1]["epoch"]) or write(*a))
    fit_tiny("cvae", small_train, epochs=4, patience=99, checkpoint_dir=tmp_path / "a", checkpoint_every=3600)
    assert saved == [3]
    saved.clear()
    fit_tiny("cvae", small_train, epochs=4, patience=99, checkpoint_dir=tmp_path / "b", checkpoint_every=0)
    assert saved == [0, 1, 2, 3]


def test_fast_retransmit_moves_lost_packets_after_the_next_survivor():
    from netsynth.models.fast_retransmit import fast_retransmit

    class Script:  # losses decided in advance: packet 2 and the last one are lost
        def __init__(self, draws):
            self.draws = iter(draws)

        def random(self):
            return next(self.draws)

    assert fast_retransmit([1, 2, 3, 4, 5], 0.5, Script([0.9, 0.1, 0.9, 0.9, 0.1])) == [1, 3, 2, 4, 5]
    assert fast_retransmit([1, 2, 3], 0.5, Script([0.1, 0.1, 0.9])) == [3, 1, 2]


def test_top_k_one_samples_the_most_likely_flow_whatever_the_seed(fitted):
    model = fitted["llama"]
    a, b = model.sample(n_per_class=3, seed=1, top_k=1), model.sample(n_per_class=3, seed=2, top_k=1)
    assert np.array_equal(a.signed, b.signed)
    for code in range(len(model.classes_)):  # one flow per class, repeated
        assert len({s for s, c in zip(a.sequences(), a.codes) if c == code}) == 1


def test_diffusion_with_classifier_free_guidance_and_ddim(small_train):
    model = netsynth.create("diffusion", **TINY["diffusion"], guidance_scale=2.0).fit(small_train, epochs=2)
    assert_valid(model.sample(n_per_class=4, seed=0, sampler="ddim", steps=3), small_train.n_packets, 1500)
    with pytest.raises(NetsynthError, match="sampler must be one of"):
        model.sample(n_per_class=1, sampler="euler")


@pytest.mark.parametrize("prediction", ["v_prediction", "epsilon", "sample"])
def test_diffusion_training_target_is_what_its_sampler_reads(prediction):
    """A perfect prediction of the training target, read by the sampler's scheduler, gives back x_0 at any t."""
    import torch
    from diffusers import DDIMScheduler
    model = netsynth.create("diffusion", prediction=prediction)
    sched = model._scheduler()
    images, noise = torch.rand(3, 1, 4, 4) * 2 - 1, torch.randn(3, 1, 4, 4)
    ddim = DDIMScheduler.from_config(sched.config)
    ddim.set_timesteps(10)
    for t in ddim.timesteps:
        ts = torch.full((3,), int(t))
        target = model._target(sched, images, noise, ts)
        x0 = ddim.step(target, t, sched.add_noise(images, noise, ts)).pred_original_sample
        assert torch.allclose(x0, images, atol=1e-3), (prediction, int(t))


@pytest.mark.parametrize("kind", ["diffusion", "cvae"])
def test_validation_loss_draws_the_same_numbers_every_epoch_and_leaves_training_random_stream(kind, fitted, small_train):
    """Early stopping compares epochs: a loss that draws noise must draw the same noise each time it validates."""
    import torch
    from netsynth.train import WithLoss, _evaluate
    model = fitted[kind]
    module = WithLoss(model.module_, model._loss)
    tensors = model._tensors(small_train)
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    first = _evaluate(module, tensors, 64, "cpu")
    assert torch.equal(torch.rand(3), expected_next)
    assert _evaluate(module, tensors, 64, "cpu") == first
    with torch.no_grad():  # fresh draws differ: the test above holds because the draws are fixed
        assert module(*tensors).item() != module(*tensors).item()


def test_unknown_diffusion_prediction_is_refused(small_train):
    with pytest.raises(NetsynthError, match="prediction must be one of v_prediction, epsilon, sample, got 'x'"):
        netsynth.create("diffusion", prediction="x").fit(small_train, epochs=1)


@pytest.mark.parametrize("kind", ["llama", "mamba"])
def test_saved_weights_load_into_the_plain_transformers_model(kind, fitted, tmp_path):
    """model.safetensors is a transformers checkpoint: the plain *ForCausalLM class takes it, key for key, and,
    given mamba's class embedding added to every input (models/mamba.py), computes the same logits."""
    import torch
    import transformers
    from safetensors.torch import load_file
    model = fitted[kind]
    model.save(tmp_path / kind)
    plain = getattr(transformers, type(model.module_).__name__)(model.module_.config)
    plain.load_state_dict(load_file(tmp_path / kind / "model.safetensors"), strict=True)
    ids = torch.from_numpy(model.codec_.encode(model.sample(n_per_class=2, seed=0)))
    with torch.inference_mode():
        embeds = plain.get_input_embeddings()(ids)
        if getattr(model.config, "class_every_step", False):
            embeds = embeds + embeds[:, :1]
        assert torch.equal(plain.eval()(inputs_embeds=embeds).logits, model.module_(input_ids=ids).logits)


def test_llama_trains_on_a_cpu_with_eager_attention_which_gives_sdpas_loss_and_gradients(small_train):
    import torch

    model = netsynth.create("llama", **TINY["llama"]).fit(small_train, epochs=1, batch_size=16, device="cpu")
    module = model.module_.train()
    assert module.config._attn_implementation == "eager"
    ids = torch.from_numpy(model.codec_.encode(small_train))[:32]
    seen = {}
    for kernel in ("eager", "sdpa"):
        module.config._attn_implementation = kernel
        module.zero_grad()
        loss = model._loss(module, ids)
        loss.backward()
        seen[kernel] = loss.item(), torch.cat([p.grad.flatten() for p in module.parameters()])
    assert abs(seen["eager"][0] - seen["sdpa"][0]) <= 1e-5
    assert (seen["eager"][1] - seen["sdpa"][1]).abs().max() <= 1e-5 * seen["sdpa"][1].abs().max()


def test_llama_trains_through_a_table_of_its_rotary_embedding_that_leaves_when_training_ends(small_train,
                                                                                             monkeypatch):
    """Llama._training_on: the table gives what transformers' rotary embedding gives at positions 0..T-1 (the same
    loss and gradients, to the bit), refuses other positions, serves every training step, and the trained module
    has transformers' own rotary embedding again."""
    import torch
    from netsynth.models.llama import RotaryTable

    served = []
    forward = RotaryTable.forward
    monkeypatch.setattr(RotaryTable, "forward",
                        lambda self, x, position_ids: served.append(position_ids.shape) or forward(self, x, position_ids))
    model = netsynth.create("llama", **TINY["llama"]).fit(small_train, epochs=1, batch_size=16, device="cpu")
    assert len(served) >= len(small_train) * 0.9 / 16  # each training batch (and the validation's)
    module, body = model.module_.train(), model.module_.model
    assert type(body.rotary_emb).__name__ == "LlamaRotaryEmbedding"
    ids = torch.from_numpy(model.codec_.encode(small_train))[:32]
    seen = []
    for rotary in (body.rotary_emb, RotaryTable(body.rotary_emb, module.config.max_position_embeddings)):
        body.rotary_emb = rotary
        module.zero_grad()
        loss = model._loss(module, ids)
        loss.backward()
        seen.append((loss.item(), torch.cat([p.grad.flatten() for p in module.parameters()])))
    assert seen[0][0] == seen[1][0] and torch.equal(seen[0][1], seen[1][1])
    with pytest.raises(ValueError, match="positions 0..T-1"):
        body.rotary_emb(torch.zeros(1), torch.arange(1, 4)[None])


@requires_cuda
def test_each_fit_trains_on_the_device_it_asks_for_in_one_process(small_train):
    """Accelerate keeps the first device of a process unless netsynth resets it (train._accelerator)."""
    model = netsynth.create("llama", **TINY["llama"])
    for device in ("cpu", "cuda", "cpu"):
        model.fit(small_train, epochs=1, batch_size=32, device=device)
        assert next(model.module_.parameters()).device.type == device


def test_compiled_training_learns_what_eager_training_learns_and_saves_the_same_weights(small_train, tmp_path):
    """--compile changes how the loss runs, not what is learned: the same seed gives the same losses, and the saved
    model is an ordinary one (its state_dict keys unchanged)."""
    import torch
    from torch._dynamo.utils import counters

    counters.clear()
    runs = {compiled: netsynth.create("llama", **TINY["llama"]).fit(small_train, epochs=2, batch_size=16, device="cpu",
                                                                     precision="fp32", compile=compiled)
            for compiled in (False, True)}
    assert counters["stats"]["unique_graphs"] >= 1  # the loss did go through dynamo
    eager, compiled = runs[False].history_, runs[True].history_
    np.testing.assert_allclose(compiled["train_loss"], eager["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(compiled["val_loss"], eager["val_loss"], rtol=1e-4)
    assert runs[True].fit_options_["compile"] is True
    runs[True].save(tmp_path / "model")
    loaded = netsynth.load(tmp_path / "model")
    assert loaded.module_.state_dict().keys() == runs[False].module_.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(loaded.module_.state_dict().values(),
                                                  runs[True].module_.state_dict().values()))


def test_compile_is_refused_with_dp_and_noted_as_unused_for_other_kinds(small_train):
    with pytest.raises(NetsynthError, match="--compile is not available with --dp-epsilon"):
        netsynth.create("llama", **TINY["llama"]).fit(small_train, epochs=1, compile=True, dp_epsilon=4.0)
    with pytest.warns(UserWarning, match="mamba does not use compile"):
        netsynth.create("mamba", **TINY["mamba"]).fit(small_train, epochs=1, compile=True)


def test_ema_is_refused_with_dp_and_noted_as_unused_where_nothing_is_trained_in_steps(small_train):
    with pytest.raises(NetsynthError, match="--ema is not available with --dp-epsilon"):
        netsynth.create("cvae", **TINY["cvae"]).fit(small_train, epochs=1, ema=True, dp_epsilon=4.0)
    with pytest.warns(UserWarning, match="markov does not use ema"):
        netsynth.create("markov").fit(small_train, ema=True)


def test_a_compiler_that_fails_is_one_line_naming_the_way_out(small_train, monkeypatch):
    import torch
    import torch._inductor.config as inductor

    # a graph compiled before, by an earlier test of this process (dynamo keeps it with the code of the loss module's
    # forward, whatever the instance) or on disk by a run before this one, would need no compiler
    torch._dynamo.reset()
    monkeypatch.setattr(inductor, "fx_graph_cache", False)
    monkeypatch.setattr(inductor.cpp, "cxx", (None, "no-such-c++-compiler"))
    try:
        with pytest.raises(NetsynthError, match=r"--compile: torch.compile failed \(.*C\+\+ compiler.*\); train without"):
            netsynth.create("llama", **TINY["llama"]).fit(small_train, epochs=1, batch_size=16, device="cpu",
                                                          compile=True)
    finally:
        torch._dynamo.reset()  # no failed frame left for the tests after this one

