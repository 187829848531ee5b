"""Decoders of one flow on the CPU in NumPy, for sampling one flow per call (models/sequence.py: sample_tokens).

At one flow a decoder step is about a hundred products and sums of vectors of a few hundred numbers, so what each
operation costs to call, not its arithmetic, sets the step's time: a torch operation on a CPU tensor costs several
microseconds of dispatch, a NumPy one about one. A step at one flow over positions 1-9 (IoT Sentinel's paper-size
models) took 152 us in NumPy against 315 us in torch (llama) and 97 against 276 us (mamba; BENCHMARKS.md). No
library runs a transformers model's step at that cost, so the step is written here, over the weights that
models/decoding.py folds (each RMSNorm's weight in the products after it, llama's rotary embedding and attention
scale in a query and key weight per position), with its state laid out for NumPy:

    NumpyLlamaDecoder   k, v [layers, kv_heads, T, head_dim]: keys and values of every position so far; the query of
                        step t attends over positions 0..t. q, k and v come from one product over their stacked
                        weights, gate and up from another (one call each; in torch the split outputs of a stacked
                        product were strided views that slowed every later operation, decoding.py).
    NumpyMambaDecoder   conv [layers, K, E] (the last K inputs of the convolution, oldest first: a shift moves whole
                        rows) and ssm [layers, E, N]: the state of decoding.MambaDecoder for one flow

Each steps one flow from a token (an int) to its logits (a NumPy array) and restores a row of models/decoding.py's
decoders' snapshot; the sampler's one-flow loop (sequence._sample_in_numpy) draws in NumPy too. For float32 weights of
plain linear layers and SiLU activations (`numpy_decoder_for` returns None for any other model, which then samples
through decoding.py). check_decoder holds them to a full transformers forward pass, and tests/test_sampling.py to
every step's distribution and to the torch decoders' logits.
"""
from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch
from scipy.special import expit

from netsynth.models.decoding import _folded, _folded_llama, _folded_mamba, _Projection


@contextlib.contextmanager
def one_blas_thread():
    """A context in which NumPy's BLAS runs on the calling thread alone. OpenBLAS's worker threads stay awake for a
    while after a product and took the cores from torch's threads: llama sampled batches of 1,024 at 0.77x its speed
    right after one-flow calls with two BLAS threads, 1.00x with one, and one flow per call was no slower
    (BENCHMARKS.md). threadpoolctl finds the BLAS that NumPy loaded, whichever it is; its controller is made at the
    first call (about 1 ms). Its own `limit` context reads every library's full description on entry (8.6 us a
    call); this one reads and sets the thread counts alone (3.6 us)."""
    libraries = _blas_libraries()
    before = [blas.get_num_threads() for blas in libraries]
    for blas in libraries:
        blas.set_num_threads(1)
    try:
        yield
    finally:
        for blas, threads in zip(libraries, before):
            blas.set_num_threads(threads)


@functools.cache
def _blas_libraries() -> tuple:
    """threadpoolctl's controllers of the BLAS libraries loaded in this process (none where it finds none)."""
    from threadpoolctl import ThreadpoolController
    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


def numpy_decoder_for(model, length: int, weights: tuple):
    """A NumPy decoder of one flow for `model` on the CPU, or None where it does not apply (not float32, an
    int8-quantized layer, an activation other than SiLU, or under autocast). Its arrays are made once per model and
    kept while the model's `weights` (decoding.weights_key) and `length` stay; each call gets a decoder of its own, so
    that threads sampling one model do not share a state."""
    cls = {"LlamaForCausalLM": NumpyLlamaDecoder, "MambaForCausalLM": NumpyMambaDecoder}.get(type(model).__name__)
    if cls is None or torch.is_autocast_enabled("cpu"):
        return None
    folded = _folded(model, length, cls.fold, weights)
    return None if folded is None else cls(folded)


def _plain(model) -> bool:
    """Whether the NumPy decoders compute what `model` does: float32 weights and SiLU activations."""
    return (model.get_input_embeddings().weight.dtype == torch.float32
            and getattr(model.config, "hidden_act", None) == "silu")


def _arrays(*projections: _Projection, t: int | None = None) -> tuple | None:
    """(weight [in, out], bias [out] or None) of the projections' outputs side by side (at position t where they turn
    with it), or None if one of them is not a plain float layer."""
    if any(p.weight is None for p in projections):
        return None
    weights = [(p.weight if p.rotation is None else p.weight[t]).numpy() for p in projections]
    biases = [None if p.bias is None else (p.bias if p.rotation is None else p.bias[t]).numpy() for p in projections]
    bias = None
    if any(b is not None for b in biases):
        bias = np.concatenate([np.zeros(w.shape[1], np.float32) if b is None else b for w, b in zip(weights, biases)])
    return np.ascontiguousarray(np.concatenate(weights, axis=1)), bias


def _affine(h: np.ndarray, weight_bias: tuple) -> np.ndarray:
    weight, bias = weight_bias
    return h @ weight if bias is None else h @ weight + bias


def _rms(x: np.ndarray, eps: float) -> np.ndarray:
    """decoding._rms for one flow: x / sqrt(sum(x^2) + d eps), the norm's weight and sqrt(d) folded after it."""
    return x * (1.0 / np.sqrt(x @ x + len(x) * eps))


def _silu(x: np.ndarray) -> np.ndarray:
    return x * expit(x)


class NumpyLlamaDecoder:
    @staticmethod
    def fold(model, length: int, dtype) -> dict | None:
        """What every step reads: per layer (q, k and v stacked at each position, o, gate and up stacked, down, the
        norms' eps), the output projection, the embedding and the shapes; None if the decoder does not apply."""
        if not _plain(model):
            return None
        layers, head = _folded_llama(model, length, dtype)
        arrays = []
        for p in layers:
            parts = ([_arrays(p.q, p.k, p.v, t=t) for t in range(length)], _arrays(p.o), _arrays(p.gate, p.up),
                     _arrays(p.down))
            if any(part is None for part in parts[0] + list(parts[1:])):
                return None
            arrays.append((*parts, p.eps))
        if head.weight is None:
            return None
        config = model.config
        kv_heads, head_dim = config.num_key_value_heads, getattr(config, "head_dim", None)
        head_dim = head_dim or config.hidden_size // config.num_attention_heads
        return dict(layers=arrays, head=_arrays(head), embedding=model.model.embed_tokens.weight.detach().numpy(),
                    eps=model.model.norm.variance_epsilon, kv_heads=kv_heads,
                    group=config.num_attention_heads // kv_heads, head_dim=head_dim, width=config.intermediate_size,
                    cache=(config.num_hidden_layers, kv_heads, length, head_dim))

    def __init__(self, folded: dict):
        self.__dict__.update(folded)
        self.k, self.v = np.empty(self.cache, np.float32), np.empty(self.cache, np.float32)
        self.t = 0

    def restore(self, snapshot: tuple, row: int) -> None:
        """Continue from the flow at `row` of a LlamaDecoder's snapshot ([t, layers, B, kv_heads, head_dim])."""
        self.t, k, v = snapshot
        self.k[:, :, :self.t] = k[:, :, row].permute(1, 2, 0, 3).numpy()
        self.v[:, :, :self.t] = v[:, :, row].permute(1, 2, 0, 3).numpy()

    def step(self, token: int) -> np.ndarray:
        """Logits [V] (float32) of the next token after `token`, the token at position t."""
        x, t = self.embedding[token], self.t
        queries = self.kv_heads * self.group * self.head_dim
        keys = self.kv_heads * self.head_dim
        for (qkv, o, gate_up, down, eps), k, v in zip(self.layers, self.k, self.v):
            h = _affine(_rms(x, eps[0]), qkv[t])
            k[:, t] = h[queries:queries + keys].reshape(self.kv_heads, self.head_dim)
            v[:, t] = h[queries + keys:].reshape(self.kv_heads, self.head_dim)
            q = h[:queries].reshape(self.kv_heads, self.group, self.head_dim)
            scores = k[:, :t + 1] @ q.transpose(0, 2, 1)  # [kv_heads, t + 1, group]; q already scaled
            weights = np.exp(scores - scores.max(1, keepdims=True))
            weights /= weights.sum(1, keepdims=True)
            x = x + _affine((weights.transpose(0, 2, 1) @ v[:, :t + 1]).reshape(-1), o)
            h = _affine(_rms(x, eps[1]), gate_up)
            x = x + _affine(_silu(h[:self.width]) * h[self.width:], down)
        self.t += 1
        return _affine(_rms(x, self.eps), self.head)


class NumpyMambaDecoder:
    @staticmethod
    def fold(model, length: int, dtype) -> dict | None:
        """What every step reads: per block (in_proj, x_proj, dt_proj, out_proj, conv weight [K, E] and bias,
        A log2(e) [E, N], D [E], the norm's eps), the output projection, the embedding and the shapes; None if the
        decoder does not apply."""
        if not _plain(model):
            return None
        blocks, head = _folded_mamba(model, length, dtype)
        arrays = []
        for p, layer in zip(blocks, model.backbone.layers):
            mixer = layer.mixer
            parts = [_arrays(p.in_proj), _arrays(p.x_proj), _arrays(p.dt_proj), _arrays(p.out_proj)]
            if any(part is None for part in parts):
                return None
            conv_bias = None if mixer.conv1d.bias is None else mixer.conv1d.bias.detach().numpy()
            arrays.append((*parts, mixer.conv1d.weight[:, 0].T.detach().numpy().copy(), conv_bias, p.A_log2e.numpy(),
                           mixer.D.detach().numpy(), p.eps))
        if head.weight is None:
            return None
        config = model.config
        return dict(blocks=arrays, head=_arrays(head), embedding=model.backbone.embeddings.weight.detach().numpy(),
                    eps=model.backbone.norm_f.variance_epsilon,
                    adds_class=getattr(model.backbone.embeddings, "adds_first_token", False),
                    width=config.intermediate_size, state=config.state_size,
                    rank=model.backbone.layers[0].mixer.dt_proj.in_features,
                    conv_shape=(config.num_hidden_layers, config.conv_kernel, config.intermediate_size),
                    ssm_shape=(config.num_hidden_layers, config.intermediate_size, config.state_size))

    def __init__(self, folded: dict):
        self.__dict__.update(folded)
        self.conv, self.ssm = np.zeros(self.conv_shape, np.float32), np.zeros(self.ssm_shape, np.float32)
        self.class_embedding = None

    def restore(self, snapshot: tuple, row: int) -> None:
        """Continue from the flow at `row` of a MambaDecoder's snapshot."""
        conv, ssm, class_embedding = snapshot
        self.conv[:] = conv[:, row].transpose(1, 2).numpy()
        self.ssm[:] = ssm[:, row].numpy()
        self.class_embedding = None if class_embedding is None else class_embedding[row].numpy()

    def step(self, token: int) -> np.ndarray:
        """Logits [V] (float32) of the next token after `token` (the class token at the first step)."""
        x = self.embedding[token]
        if self.adds_class:
            if self.class_embedding is None:
                self.class_embedding = x
            x = x + self.class_embedding
        for (in_proj, x_proj, dt_proj, out_proj, conv_weight, conv_bias, a_log2e, d, eps), conv, ssm in zip(
                self.blocks, self.conv, self.ssm):
            h = _affine(_rms(x, eps), in_proj)
            xs, z = h[:self.width], h[self.width:]
            conv[:-1] = conv[1:]
            conv[-1] = xs
            xs = (conv * conv_weight).sum(0)
            xs = _silu(xs if conv_bias is None else xs + conv_bias)
            h = _affine(xs, x_proj)
            dt = np.logaddexp(0.0, _affine(h[:self.rank], dt_proj))  # softplus
            b, c = h[self.rank:self.rank + self.state], h[self.rank + self.state:]
            ssm *= np.exp2(dt[:, None] * a_log2e)
            ssm += (dt * xs)[:, None] * b
            y = ssm @ c + xs * d
            x = x + _affine(y * _silu(z), out_proj)
        return _affine(_rms(x, self.eps), self.head)
