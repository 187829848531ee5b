"""The sequence models' sampler draws from exactly the model's distribution (DESIGN section 4).

The slow reference is one full forward pass over each prefix, with the masks, temperature and top-k written out
here again; the sampler must match it at every step, for a batch of flows of mixed lengths.
"""
import copy
import json

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

import netsynth
from netsynth import NetsynthError
from netsynth.codecs.tokens import EOS
from netsynth.models.decoding import GraphedDecoder, _GRAPHED, decoder_for, weights_key
from netsynth.models.numpy_decoding import NumpyLlamaDecoder, NumpyMambaDecoder, numpy_decoder_for
from netsynth.models.sequence import (_draw_in_numpy, _inverse_cdf, draw, next_token_distribution,
                                      numpy_next_token_distribution, sample_tokens, sampler_reference_error)
from netsynth.precision import autocast
from conftest import requires_cuda
from test_models import TINY

SETTINGS = [dict(temperature=1.0, top_k=0), dict(temperature=0.7, top_k=5)]


@pytest.fixture(scope="module", params=["llama", "mamba"])
def trained(request, small_train):
    # trained until its distributions are peaked and depend on the context, so that a sampler which loses the
    # context is far from the reference (see the test after next)
    model = netsynth.create(request.param, **TINY[request.param], vocabulary="observed")
    return model.fit(small_train, epochs=10, batch_size=16, lr=1e-2)


def reference_distribution(module, codec, prefix, temperature, top_k):
    """softmax over the allowed tokens of logits / T, cut to the k largest, from a forward pass without cache."""
    logits = module(input_ids=prefix, use_cache=False).logits[:, -1].double() / temperature
    allowed = torch.zeros(codec.vocab_size, dtype=torch.bool)
    allowed[codec.first_length:] = True  # sizes; never <PAD>, <UNK> or a class token
    allowed[EOS] = prefix.shape[1] > 1  # <EOS> only after the first packet
    logits[:, ~allowed] = -torch.inf
    if top_k:
        kth = logits.sort(dim=-1, descending=True).values[:, top_k - 1:top_k]
        logits[logits < kth] = -torch.inf
    return torch.softmax(logits, dim=-1)


def sample_with_trace(model, codes, batch_size, **settings):
    steps = []
    tokens = sample_tokens(model.module_, model.codec_, codes, seed=0, batch_size=batch_size,
                           on_step=lambda start, step, rows, probs: steps.append((start + rows.numpy(), step, probs.clone())),
                           **settings)
    return tokens, steps


@pytest.mark.parametrize("settings", SETTINGS, ids=["plain", "temperature-top-k"])
def test_every_step_draws_from_the_full_forward_distribution(trained, settings):
    codec, module = trained.codec_, trained.module_
    codes = np.arange(40) % len(trained.classes_)
    tokens, steps = sample_with_trace(trained, codes, batch_size=16, **settings)
    for flows, step, probs in steps:
        prompt = torch.from_numpy(codec.class_token(codes[flows]))[:, None]
        prefix = torch.cat([prompt, torch.from_numpy(tokens[flows, :step])], dim=1)
        with torch.inference_mode():
            expected = reference_distribution(module, codec, prefix, **settings)
        assert (probs.double() - expected).abs().max() <= 1e-5, (flows, step)
    # a flow is drawn for at every step up to its <EOS> (or the last packet) and never after: finished flows leave
    ends = np.where((tokens == EOS).any(axis=1), (tokens == EOS).argmax(axis=1), codec.n_packets - 1)
    drawn = np.zeros(tokens.shape, dtype=int)
    for flows, step, _ in steps:
        drawn[flows, step] += 1
    assert (drawn == (np.arange(codec.n_packets) <= ends[:, None])).all()
    assert len(set(ends)) > 2 and ends.min() < codec.n_packets - 1  # mixed lengths: some flows ended mid-batch


@requires_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_one_flow_per_call_on_cuda_replays_graphs_that_draw_what_the_eager_decoder_draws(trained, precision):
    module, codec = copy.deepcopy(trained.module_).cuda(), trained.codec_
    codes = np.arange(24) % len(trained.classes_)
    with autocast(precision, torch.device("cuda")):
        graphed = [sample_tokens(module, codec, codes[i:i + 1], seed=i, device="cuda") for i in range(len(codes))]
        assert type(_GRAPHED[module][1]) is GraphedDecoder
        eager = [sample_tokens(module, codec, codes[i:i + 1], seed=i, device="cuda", fast_one_flow=False)
                 for i in range(len(codes))]
        assert np.array_equal(np.concatenate(graphed), np.concatenate(eager))
        if precision == "fp32":
            assert sampler_reference_error(module, codec, codes, batch_size=1) <= 1e-5


def assert_threads_draw_what_they_draw_alone(trained, device: str):
    """One flow per call keeps state per model (the NumPy decoder's arrays, CUDA graphs): threads that sample one
    model at once must each draw the flows that their seeds draw alone."""
    from concurrent.futures import ThreadPoolExecutor

    module, codec = copy.deepcopy(trained.module_).to(device), trained.codec_
    codes = np.arange(16) % len(trained.classes_)

    def flows(seed):
        return np.concatenate([sample_tokens(module, codec, codes[i:i + 1], seed=seed + i, device=device)
                               for i in range(len(codes))])

    alone = [flows(100 * k) for k in range(4)]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(flows, [100 * k for k in range(4)]))
    assert all(np.array_equal(a, b) for a, b in zip(alone, together))


def test_threads_sampling_one_model_one_flow_at_a_time_on_the_cpu(trained):
    assert_threads_draw_what_they_draw_alone(trained, "cpu")


@requires_cuda
def test_threads_sampling_one_model_one_flow_at_a_time_take_turns_on_its_cuda_graphs(trained):
    assert_threads_draw_what_they_draw_alone(trained, "cuda")


@pytest.mark.parametrize("settings", SETTINGS, ids=["plain", "temperature-top-k"])
def test_one_flow_per_call_on_the_cpu_steps_numpy_and_draws_from_the_full_forward_distribution(trained, settings):
    module, codec = trained.module_, trained.codec_
    codes = np.arange(24) % len(trained.classes_)
    assert sampler_reference_error(module, codec, codes, batch_size=1, **settings) <= 1e-5
    decoder = numpy_decoder_for(module, codec.n_packets, weights_key(module))
    assert type(decoder) is {"llama": NumpyLlamaDecoder, "mamba": NumpyMambaDecoder}[trained.kind]
    fast = np.concatenate([sample_tokens(module, codec, codes[i:i + 1], seed=i, **settings)
                           for i in range(len(codes))])
    eager = np.concatenate([sample_tokens(module, codec, codes[i:i + 1], seed=i, fast_one_flow=False, **settings)
                            for i in range(len(codes))])
    # the same seeds draw the same flows but where float rounding moves a draw that lies on a boundary
    assert (fast == eager).all(axis=1).mean() >= 0.9
    # several flows one at a time: each flow's uniform numbers follow the last one's, as in the batched loop
    many = sample_tokens(module, codec, codes, seed=3, batch_size=1, **settings)
    assert (many == sample_tokens(module, codec, codes, seed=3, batch_size=1, fast_one_flow=False,
                                  **settings)).all(axis=1).mean() >= 0.9
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 products: the torch decoder's
        assert numpy_decoder_for(module, codec.n_packets, weights_key(module)) is None


@pytest.mark.parametrize("kind", ["llama", "mamba"])
def test_the_numpy_decoders_step_as_the_torch_decoders_do(kind):
    """Grouped-query attention and biases in every projection (llama), a convolution bias and a class added at every
    step (mamba): each step's logits equal those of the torch decoder restored from the same snapshot."""
    from transformers import MambaConfig, MambaForCausalLM
    from netsynth.models.mamba import ClassAddedEmbedding

    if kind == "llama":
        model = tiny_llama(num_key_value_heads=2, attention_bias=True, mlp_bias=True)
    else:
        torch.manual_seed(0)
        model = MambaForCausalLM(MambaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             state_size=8, use_bias=True)).eval()
        model.backbone.embeddings = ClassAddedEmbedding(50, 32)
    with torch.no_grad():  # transformers initializes biases to zero, where a dropped bias would pass unseen
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
    prefix = torch.randint(0, 50, (3, 6))
    torch_decoder = decoder_for(model, len(prefix), prefix.shape[1])
    with torch.inference_mode():
        torch_decoder.step(prefix[:, 0])
        snapshot = torch_decoder.snapshot()
        numpy_decoder = numpy_decoder_for(model, prefix.shape[1], weights_key(model))
        one = decoder_for(model, 1, prefix.shape[1])
        for row in range(len(prefix)):
            numpy_decoder.restore(snapshot, row)
            one.restore(snapshot, torch.tensor([row]))
            for t in range(1, prefix.shape[1]):
                torch.testing.assert_close(torch.from_numpy(numpy_decoder.step(int(prefix[row, t]))),
                                           one.step(prefix[row, t:t + 1])[0], rtol=1e-5, atol=1e-5)


def test_the_default_batch_is_larger_on_a_gpu_and_a_given_one_is_kept(trained, monkeypatch):
    from netsynth.models import sequence

    class Asked(Exception):
        pass

    def recording(*args, batch_size, device, **kwargs):
        seen.append((device.type, batch_size))
        raise Asked  # the sampler itself needs the device; what it is asked for is the point

    seen = []
    monkeypatch.setattr(sequence, "sample_tokens", recording)
    for device in ("cpu", "cuda"):
        monkeypatch.setattr(sequence, "resolve_device", lambda name, device=device: torch.device(device))
        for given in (None, 7):
            with pytest.raises(Asked):
                trained.sample({trained.classes_[0]: 10}, seed=0, batch_size=given)
    assert seen == [("cpu", sequence.SAMPLE_BATCH), ("cpu", 7), ("cuda", sequence.GPU_BATCH), ("cuda", 7)]


def test_the_first_step_kept_per_model_follows_its_weights_and_precision(trained):
    """The first step, which sees the class token alone, is computed once per model and reused: after an in-place
    change of the weights (an optimizer step) or under bf16 autocast it must be computed again."""
    module, codec = copy.deepcopy(trained.module_), trained.codec_
    codes = np.arange(6) % len(trained.classes_)
    prefix = torch.from_numpy(codec.class_token(codes))[:, None]

    def first_step(**autocast):
        seen = []
        with torch.autocast("cpu", **{"enabled": False, **autocast}):
            sample_tokens(module, codec, codes, seed=0,
                          on_step=lambda start, step, rows, probs: seen.append(probs.clone()) if step == 0 else None)
            with torch.inference_mode():
                expected = reference_distribution(module, codec, prefix, 1.0, 0)
        return seen[0].double(), expected

    before, expected = first_step()
    assert (before - expected).abs().max() <= 1e-5
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(1.5)
    after, expected = first_step()
    assert (after - expected).abs().max() <= 1e-5 and (after - before).abs().max() > 1e-3
    rounded, expected = first_step(enabled=True, dtype=torch.bfloat16)
    assert (rounded - expected).abs().max() <= 2e-2 and (rounded - after).abs().max() > 1e-6


def test_the_reference_sees_a_sampler_that_forgets_its_context(trained):
    """What transformers 5.17 did with our `cache=`: every step saw its last token only. The reference must tell."""
    codec, module = trained.codec_, trained.module_
    codes = np.arange(16) % len(trained.classes_)
    tokens, steps = sample_with_trace(trained, codes, batch_size=16)
    worst = 0.0
    with torch.inference_mode():
        for _, step, _ in steps[1:]:
            prefix = torch.cat([torch.from_numpy(codec.class_token(codes))[:, None], torch.from_numpy(tokens[:, :step])], 1)
            full = reference_distribution(module, codec, prefix, 1.0, 0)
            last_only = reference_distribution(module, codec, prefix[:, -1:], 1.0, 0)
            worst = max(worst, float((full - last_only).abs().max()))
    assert worst > 1e-2


def test_sampling_stops_when_the_decoder_forgets_its_context(trained, monkeypatch):
    from netsynth.models import sequence

    class Forgetful:
        """Steps every token on a fresh cache, as the sampler did when transformers 5.17 swallowed its cache."""

        def __init__(self, model, batch, length, weights=None):
            self.model, self.length = model, length

        def step(self, ids):
            return decoder_for(self.model, len(ids), self.length).step(ids)

        def keep(self, rows):
            pass

        def snapshot(self):
            pass

        def restore(self, snapshot, rows):
            pass

    monkeypatch.setattr(sequence, "decoder_for", Forgetful)
    codes = np.arange(8) % len(trained.classes_)
    with pytest.raises(NetsynthError, match="Forgetful gives other logits than .*'s forward pass"):
        sample_tokens(trained.module_, trained.codec_, codes, seed=0)


def test_a_mamba_saved_before_class_every_step_loads_and_samples_as_it_was(small_train, tmp_path):
    """Models saved before `class_every_step` saw the class as the prompt alone: they load with it off, and the
    decoder, without the addition, still draws from the full forward distribution."""
    model = netsynth.create("mamba", **TINY["mamba"], vocabulary="observed", class_every_step=False)
    model.fit(small_train, epochs=2, batch_size=16, lr=1e-2).save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["settings"]["class_every_step"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    loaded = netsynth.load(tmp_path / "m")
    assert loaded.config.class_every_step is False and type(loaded.module_.backbone.embeddings) is torch.nn.Embedding
    codes = np.arange(40) % len(model.classes_)
    assert sampler_reference_error(loaded.module_, loaded.codec_, codes, batch_size=16) <= 1e-5
    assert np.array_equal(loaded.sample(n_per_class=5, seed=0).signed, model.sample(n_per_class=5, seed=0).signed)


@pytest.mark.parametrize("block", [64, 3, 2])  # one level (the row fits a block); blocks with a shorter last one; even
def test_draw_frequencies_match_the_probabilities(block):
    p = torch.tensor([0.0, 0.1, 0.25, 0.0, 0.05, 0.5, 0.1, 0.0])[:7 if block == 3 else 8]  # block 3: the last has mass
    n = 200_000
    ids = draw(p.expand(n, -1), torch.Generator().manual_seed(0), block=block)[:, 0].numpy()
    counts = np.bincount(ids, minlength=len(p))
    assert len(counts) == len(p) and counts[p.numpy() == 0].sum() == 0  # a token of probability zero is never drawn
    expected = n * p.double().numpy() / p.double().sum().item()
    nonzero = expected > 0
    assert chisquare(counts[nonzero], expected[nonzero]).pvalue > 1e-3


@pytest.mark.parametrize("block", [64, 2])
def test_draw_with_u_zero_skips_leading_zero_probability_tokens(monkeypatch, block):
    monkeypatch.setattr(torch, "rand", lambda shape, generator=None, device=None: torch.zeros(shape))
    probs = torch.tensor([[0.0, 0.0, 0.0, 0.3, 0.7]]).expand(64, -1)  # 64 rows: two levels where the block is short
    assert (draw(probs, torch.Generator(), block=block)[:, 0] == 3).all()
    assert _draw_in_numpy(probs[0].numpy(), torch.Generator()) == 3


def test_the_numpy_draw_picks_what_the_torch_draw_picks_from_the_same_generator():
    """The one-flow loop's draw (NumPy, one row) against _inverse_cdf, the batched loop's at one row: the same
    uniform numbers and cumulative sums, so the same token for every row, zeros and peaked rows included."""
    rng = np.random.default_rng(0)
    rows = rng.dirichlet(np.full(3000, 0.05), size=300).astype(np.float32)
    rows[::3, rng.integers(0, 3000, 500)] = 0
    rows[1::3] = 0
    rows[1::3, 7] = 1
    numpy_gen, torch_gen = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    picked = [_draw_in_numpy(row, numpy_gen) for row in rows]
    expected = [int(_inverse_cdf(torch.from_numpy(row)[None], torch_gen)) for row in rows]
    assert picked == expected and len(set(picked)) > 50


@pytest.mark.parametrize("temperature, top_k", [(1.0, 0), (0.7, 0), (1.3, 5), (1.0, 3000), (1.0, 4000)])
def test_the_numpy_distribution_is_the_torch_distribution(temperature, top_k):
    """numpy_next_token_distribution (one flow) against next_token_distribution, with masked tokens and ties at the
    k-th value (kept by both)."""
    rng = np.random.default_rng(1)
    logits = (rng.normal(0, 3, 3000)).astype(np.float32)
    logits[10:20] = logits.max() + 1  # ten tied largest values: top 5 keeps all ten
    bias = np.where(np.arange(3000) < 4, -np.inf, 0).astype(np.float32)
    expected = next_token_distribution(torch.from_numpy(logits)[None], torch.from_numpy(bias), temperature, top_k)[0]
    got = numpy_next_token_distribution(logits.copy(), bias, temperature, top_k)
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-5, atol=1e-7)
    assert (got[:4] == 0).all() and ((got > 0).sum() == 10 if top_k == 5 else True)


@pytest.mark.parametrize("mode", ["int8-dynamic", "int8-weight-only"])
def test_a_quantized_model_samples_despite_its_rounding(trained, mode):
    """int8 quantization rounds the cached and the full pass differently; that is not a broken cache. Its Linear
    layers run as themselves, the norms' weights and the rotations applied around them (decoding._Projection)."""
    from netsynth.tasks.efficiency import quantized

    if trained.kind == "mamba":
        pytest.skip("the efficiency step quantizes llama only (transformers' mamba uses its Linear weights directly, "
                    "which dynamic quantization replaces)")
    model = quantized(trained, mode)
    flows = model.sample(n_per_class=50, seed=0, device="cpu")
    assert len(flows) == 50 * len(trained.classes_)
    one = model.sample({trained.classes_[0]: 1}, seed=0, device="cpu")  # the NumPy decoder steps aside for int8 layers
    assert len(one) == 1 and numpy_decoder_for(model.module_, model.n_packets_, weights_key(model.module_)) is None


def test_bf16_products_stored_once_draw_what_autocast_casting_at_every_call_draws(trained, monkeypatch):
    """Under bf16 autocast the folded products keep their weights in bf16 (the fast path); with the weights left in
    float32, autocast casts them at every product (the reference). Same rounding, so the same flows."""
    from netsynth.models import decoding

    codes = np.arange(60) % len(trained.classes_)

    def tokens():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return sample_tokens(trained.module_, trained.codec_, codes, seed=3, batch_size=16)

    def product_dtypes():
        fold = decoding._folded_llama if trained.kind == "llama" else decoding._folded_mamba
        layers, _ = decoding._FOLDED[trained.module_][fold][1]
        return {p.weight.dtype for layer in layers for p in vars(layer).values() if isinstance(p, decoding._Projection)}

    fast = tokens()
    assert product_dtypes() == {torch.bfloat16}
    for name in ("_folded_llama", "_folded_mamba"):
        fold = getattr(decoding, name)
        monkeypatch.setattr(decoding, name, lambda model, length, dtype, fold=fold: fold(model, length, None))
    assert np.array_equal(fast, tokens()) and product_dtypes() == {torch.float32}


def test_the_llama_decoder_groups_query_heads_over_shared_keys_and_drops_rows():
    """A LlamaForCausalLM with 2 key/value heads for 4 query heads (grouped-query attention), flows dropped
    mid-way: every step's logits equal those of a full forward pass over the prefix of the flows still running."""
    model = tiny_llama(num_key_value_heads=2)
    prefix = torch.randint(0, 50, (5, 6))
    decoder, rows = decoder_for(model, len(prefix), prefix.shape[1]), torch.arange(len(prefix))
    with torch.inference_mode():
        for t in range(prefix.shape[1]):
            logits = decoder.step(prefix[rows, t])
            full = model(input_ids=prefix[rows, :t + 1], use_cache=False).logits[:, -1]
            torch.testing.assert_close(logits, full, rtol=1e-5, atol=1e-5)
            if t in (1, 3):  # the first and the last flow end here
                kept = torch.arange(1, len(rows) - 1)
                rows = rows[kept]
                decoder.keep(kept)


def tiny_llama(**extra):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, **extra)).eval()


def test_a_projection_gives_the_same_with_its_weights_folded_or_run_around_the_layer():
    """The folded weight (norm weight, rotation per position and scale in one product) against the same layer
    run as itself with both applied around it, the path of int8-quantized layers."""
    from netsynth.models.decoding import _Projection, _rotations

    class Wrapped(torch.nn.Linear):  # not a plain nn.Linear: runs as itself
        pass

    model = tiny_llama(attention_bias=True)
    layer = model.model.layers[0].self_attn.q_proj
    wrapped = Wrapped(layer.in_features, layer.out_features)
    wrapped.load_state_dict(layer.state_dict())
    scale, rotation = torch.rand(32) + 0.5, _rotations(model, 6) * 0.3
    folded, around = _Projection(layer, scale, rotation), _Projection(wrapped, scale, rotation)
    assert folded.weight is not None and around.weight is None
    h = torch.randn(3, 32)
    with torch.inference_mode():
        for t in range(6):
            torch.testing.assert_close(folded(h, t), around(h, t), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(folded(h, 0), folded(h, 5))  # the rotation depends on the position


def test_the_weights_key_reads_every_parameter_that_parameters_walks(trained):
    """weights_key reads the modules' parameter dictionaries itself: against parameters(), its slow reference, on the
    trained model (llama and mamba with their timing heads and class embeddings)."""
    module = trained.module_
    key = weights_key(module)
    assert set(key) == {(p.data_ptr(), p._version) for p in module.parameters()}
    assert len(key) >= len(list(module.parameters()))


def test_the_folded_weights_follow_the_model_when_its_weights_change():
    """The folding is kept per model; an optimizer step or a load changes the weights in place, and the next
    decoder must read the new ones."""
    model = tiny_llama()
    prefix = torch.randint(0, 50, (3, 4))

    def last_logits():
        decoder = decoder_for(model, len(prefix), prefix.shape[1])
        with torch.inference_mode():
            for t in range(prefix.shape[1]):
                logits = decoder.step(prefix[:, t])
            return logits, model(input_ids=prefix, use_cache=False).logits[:, -1]

    torch.testing.assert_close(*last_logits(), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    torch.testing.assert_close(*last_logits(), rtol=1e-5, atol=1e-5)
