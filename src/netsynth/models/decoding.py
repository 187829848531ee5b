"""Step-by-step decoding of llama and mamba over a preallocated cache, for the sampler (models/sequence.py).

Each decoder runs the model's own weights and activations, with what is linear between two products folded into
the products' weights once per model (_Projection: each RMSNorm's weight; llama's rotary embedding and attention
scale as a query and key weight per position; int8-quantized layers run as themselves), and owns only the state
between steps:

    LlamaDecoder   k, v [T, layers, B, kv_heads, head_dim]: keys and values of every position so far, position
                   first, so that dropping flows moves only the positions written, a prefix of the cache; the query
                   of step t attends over positions 0..t (all flows of a batch are at the same position)
    MambaDecoder   conv [layers, B, E, K]: the last K inputs of the causal convolution (K = conv_kernel);
                   ssm [layers, B, E, N]: the selective scan's state h_t (Gu & Dao, Algorithm 2: h_t = exp(dt A) h_{t-1}
                   + dt B_t x_t, y_t = C_t h_t + D x_t, gated by silu(z_t)); E = intermediate_size, N = state_size

Why not transformers' own cache: its cache classes and the forward keyword that takes them changed across the 5.x
releases netsynth supports (a renamed keyword was silently dropped, issue #8), none of them can drop the rows of
flows that have ended, and a full transformers forward per step spends most of a small model's time outside the
arithmetic. `keep(rows)` drops finished flows, so a batch costs what its flows' own lengths cost, not the longest's.
`snapshot()` and `restore(snapshot, rows)` start flows from a state computed once (the sampler's first step, which
depends on the class alone).
The sampler checks every decoder against a full transformers forward pass over the prefix (the slow reference).
"""
from __future__ import annotations

import math
import threading
import weakref

import torch
import torch.nn.functional as F


def decoder_for(model, batch: int, length: int, weights: tuple | None = None):
    """The decoder for a transformers LlamaForCausalLM or MambaForCausalLM, for `batch` flows of up to `length` tokens.
    weights: weights_key(model), where the caller has it (at one flow per call, each reading of it costs 50 us)."""
    cls = {"LlamaForCausalLM": LlamaDecoder, "MambaForCausalLM": MambaDecoder}.get(type(model).__name__)
    if cls is None:
        raise TypeError(f"no decoder for {type(model).__name__}")
    return cls(model, batch, length, weights)


_GRAPHED = weakref.WeakKeyDictionary()  # model -> (what the capture read, its GraphedDecoder)


def graphed_decoder(model, length: int, snapshot: tuple, weights: tuple):
    """The GraphedDecoder of one flow for `model` on CUDA, captured at the first call and kept while the model's
    `weights` (weights_key), `length` and the autocast setting stay. snapshot: a decoder state to warm up from."""
    dtype = torch.is_autocast_enabled("cuda") and torch.get_autocast_dtype("cuda")
    key = (length, weights, dtype)
    with _CAPTURING:  # one capture at a time, and each model's graphs captured once
        if model not in _GRAPHED or _GRAPHED[model][0] != key:
            _GRAPHED[model] = key, GraphedDecoder(decoder_for(model, 1, length, weights), snapshot, length - 1)
        return _GRAPHED[model][1]


_CAPTURING = threading.Lock()


class GraphedDecoder:
    """A decoder of one flow whose `steps` steps replay CUDA graphs, one captured per step (llama's step t reads
    positions 0..t, so each position has its own): one launch per step, where the decoder itself launches one kernel
    per operation, about 150 for llama's step. At one flow per call on a GPU those launches were nearly all of the
    time: on an H200, llama's step took 1,568 us eagerly and 252 us replayed (BENCHMARKS.md). A graph reads and
    writes the addresses it was captured with: the decoder's state, which restore() copies into in place, and the
    token ids, copied into a buffer of its own. The batch cannot shrink (keep() is refused): at one flow, a flow that
    ends ends the batch. Large batches stay eager, where the arithmetic, not the launches, takes the time. Threads
    that sample one model share its GraphedDecoder and take turns on it (`lock`, held for a whole call): its graphs
    replay into one state."""

    def __init__(self, decoder, snapshot: tuple, steps: int):
        self.decoder = decoder
        weight = decoder.model.get_input_embeddings().weight
        self.ids = torch.zeros(1, dtype=torch.long, device=weight.device)
        rows = torch.zeros(1, dtype=torch.long, device=weight.device)
        autocast = torch.is_autocast_enabled("cuda")
        # autocast's cache of cast weights would outlive a capture that fills it (PyTorch's CUDA graph notes)
        with torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda"), enabled=autocast, cache_enabled=False):
            side = torch.cuda.Stream()  # warm-up outside a capture (cuBLAS's workspace, the allocator), as PyTorch asks
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    decoder.restore(snapshot, rows)
                    for _ in range(steps):
                        decoder.step(self.ids)
            torch.cuda.current_stream().wait_stream(side)
            decoder.restore(snapshot, rows)
            self.graphs = []
            for _ in range(steps):  # each its own memory pool: replays that stop early never touch another's output
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    logits = decoder.step(self.ids)
                self.graphs.append((graph, logits))
        self.done = 0
        self.lock = threading.Lock()

    def restore(self, snapshot: tuple, rows: torch.Tensor) -> None:
        if len(rows) != 1:
            raise ValueError(f"a GraphedDecoder holds one flow, not {len(rows)}")
        self.decoder.restore(snapshot, rows)
        self.done = 0

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits [1, V] (float32) after `ids` [1], as the decoder's step; valid until the next step or restore."""
        self.ids.copy_(ids)
        graph, logits = self.graphs[self.done]
        graph.replay()
        self.done += 1
        return logits

    def keep(self, rows: torch.Tensor) -> None:
        raise ValueError("a GraphedDecoder's batch cannot shrink")


class LlamaDecoder:
    def __init__(self, model, batch: int, length: int, weights: tuple | None = None):
        config, weight = model.config, model.get_input_embeddings().weight
        self.model = model
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        shape = (length, config.num_hidden_layers, batch, self.kv_heads, self.head_dim)
        # empty, not zeros: step t writes position t before anything reads it
        self._k, self._v = (_Rows(shape, 2, weight.device, weight.dtype) for _ in "kv")
        self.layers, self.head = _folded(model, length, _folded_llama, weights)
        self.t = 0

    k = property(lambda self: self._k.state)
    v = property(lambda self: self._v.state)

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits [B, V] (float32) of the next token after `ids` [B], the tokens at position t."""
        x, t = F.embedding(ids, self.model.model.embed_tokens.weight), self.t
        for p, k_cache, v_cache in zip(self.layers, self.k.unbind(1), self.v.unbind(1)):
            h = _rms(x, p.eps[0])
            q = p.q(h, t).unflatten(-1, (self.kv_heads, -1, self.head_dim))  # [B, kv_heads, group, head_dim]
            k_cache[t] = p.k(h, t).unflatten(-1, (-1, self.head_dim))
            v_cache[t] = p.v(h).unflatten(-1, (-1, self.head_dim))
            x = x + p.o(self._attend(q, k_cache[:t + 1], v_cache[:t + 1]))
            h = _rms(x, p.eps[1])
            x = x + p.down(p.act(p.gate(h)) * p.up(h))
        self.t += 1
        return _logits(self.head, _rms(x, self.model.model.norm.variance_epsilon))

    def snapshot(self) -> tuple:
        """The state after the steps so far (position count, keys and values), for `restore`."""
        return self.t, self.k[:self.t].clone(), self.v[:self.t].clone()

    def restore(self, snapshot: tuple, rows: torch.Tensor) -> None:
        """Continue from the flows at `rows` of `snapshot` (rows may repeat; this decoder now has len(rows) flows, at
        most as many as it was made for)."""
        self.t, k, v = snapshot
        self._k.rows(len(rows))
        self._v.rows(len(rows))
        self.k[:self.t] = k[:, :, rows]
        self.v[:self.t] = v[:, :, rows]

    @staticmethod
    def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention [B, heads * head_dim] of one query per flow, q [B, kv_heads, group, head_dim] (already scaled),
        over every key so far, k and v [t + 1, B, kv_heads, head_dim] (no mask: nothing comes after the query). The
        query heads of a group read one key/value head, as transformers' repeat_kv. Written out because
        scaled_dot_product_attention at one query per flow ran 2-5x slower than these products and sums at batch
        1,024 (BENCHMARKS.md). The softmax is written out too: torch's softmax of these scores opened a parallel
        region even at one flow, and where the other thread waits passively (netsynth/__init__.py) waking it cost
        about 55 us, half of a step at one flow."""
        scores = (k[..., None, :] * q).sum(-1)  # [t + 1, B, kv_heads, group]
        weights = (scores - scores.amax(0)).exp_()
        weights /= weights.sum(0)
        return (weights[..., None] * v[..., None, :]).sum(0).flatten(1)

    def keep(self, rows: torch.Tensor) -> None:
        """Go on with only the flows at `rows` (indices into the current batch): only the positions written so far
        move."""
        self._k.keep(rows, self.t)
        self._v.keep(rows, self.t)


class _Rows:
    """A decoder's state [P, ..., B, ...] (flows along `dim`, positions or layers first), held in one of two buffers
    of its largest size. keep(rows) writes the kept flows into the other buffer with one index_select, laid out
    contiguously for the smaller batch, and swaps: 3-7x faster than moving them within one buffer (a gather into
    a temporary, then a copy back) at batch 1,024, where that move took a tenth of llama's sampling time
    (BENCHMARKS.md), for twice the state's memory. What is written is always a prefix of a buffer, and the buffers
    serve every batch of a sampling run (`rows`): a move into memory the process had not touched yet took 2.3x as
    long, its page faults included."""

    def __init__(self, shape: tuple, dim: int, device, dtype: torch.dtype, zeros: bool = False):
        self.dim, self.shape = dim, shape
        # the second buffer at the first keep: one flow per call never drops a flow before the last step
        self._buffers = [(torch.zeros if zeros else torch.empty)(math.prod(shape), device=device, dtype=dtype), None]
        self.rows(shape[dim])

    def _view(self, buffer: int, rows: int) -> torch.Tensor:
        shape = list(self.shape)
        shape[self.dim] = rows
        return self._buffers[buffer][:math.prod(shape)].view(shape)

    def rows(self, rows: int) -> None:
        """Start over with `rows` flows (at most the initial size); what the state then holds is undefined."""
        self._current, self.state = 0, self._view(0, rows)

    def keep(self, rows: torch.Tensor, upto: int | None = None) -> None:
        """Only the flows at `rows` along dim; with `upto`, only the first `upto` positions (dim 0) are moved, the
        rest of the new state is unwritten."""
        self._current = 1 - self._current
        if self._buffers[self._current] is None:
            self._buffers[self._current] = torch.empty_like(self._buffers[0])
        kept = self._view(self._current, len(rows))
        torch.index_select(self.state[:upto], self.dim, rows, out=kept[:upto])
        self.state = kept


# At one token per flow a step is hundreds of tiny operations, so the Python around each one costs more than its
# arithmetic (at one flow per call, a llama step ran 778 ATen calls before the folding below, 400 after). What is linear between
# two products is folded into the weights once per model: each RMSNorm's weight into the projections that read
# it, and llama's rotary position embedding and attention scale into a query and key weight per position.
class _Projection:
    """h [B, in] -> layer(scale * h) [B, out], each head of D outputs then turned by rotation[t] [D, D] when given.

    For a float nn.Linear that is one product over a weight with the scale and the rotations folded in, stored
    transposed for torch.mm (F.linear transposes at every call) and in `dtype` when given (the autocast dtype: autocast
    keeps only the casts of leaf tensors that require grad, and none under inference mode, where the sampler runs, so
    it would cast a folded weight again at every product; BENCHMARKS.md). Any other layer (int8-quantized: its own class, or
    int8 weights in an nn.Linear) runs as itself, the scale and rotation applied around it."""

    def __init__(self, layer, scale: torch.Tensor | None = None, rotation: torch.Tensor | None = None,
                 dtype: torch.dtype | None = None):
        self.layer, self.scale, self.rotation = layer, scale, rotation
        self.weight = self.bias = None
        if type(layer) is torch.nn.Linear and type(layer.weight) is torch.nn.Parameter:  # not torchao's int8 tensors
            weight, self.bias = layer.weight if scale is None else layer.weight * scale, layer.bias
            if rotation is not None:  # [T, out, in] and [T, out]: one weight per position
                weight = _turn_heads(rotation, weight)
                self.bias = None if self.bias is None else _turn_heads(rotation, self.bias[:, None])[..., 0]
            self.weight = weight.mT.contiguous()
            if dtype is not None:  # what autocast would give at every call: the same rounding, once
                self.weight = self.weight.to(dtype)
                self.bias = None if self.bias is None else self.bias.to(dtype)

    def __call__(self, h: torch.Tensor, t: int = 0) -> torch.Tensor:
        if self.weight is None:
            out = self.layer(h if self.scale is None else h * self.scale)
            if self.rotation is None:
                return out
            return (out.unflatten(-1, (-1, self.rotation.shape[-1])) @ self.rotation[t].mT).flatten(-2)
        weight, bias = self.weight, self.bias
        if self.rotation is not None:
            weight, bias = weight[t], None if bias is None else bias[t]
        return torch.mm(h, weight) if bias is None else torch.addmm(bias, h, weight)


def _turn_heads(rotation: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """rotation [T, D, D] applied to each head's D rows of weight [heads * D, in]: [T, heads * D, in]."""
    heads = weight.unflatten(0, (-1, rotation.shape[-1]))
    return torch.einsum("tij,hjk->thik", rotation, heads).flatten(1, 2)


def _rotations(model, length: int) -> torch.Tensor:
    """R [T, D, D] with R[t] @ x = transformers' rotary embedding of a head's x [D] at position t: the embedding
    (apply_rotary_pos_emb, whatever its layout) applied to the identity's rows."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    weight = model.get_input_embeddings().weight
    cos, sin = model.model.rotary_emb(weight.float(), torch.arange(length, device=weight.device)[None])  # [1, T, D]
    eye = torch.eye(cos.shape[-1], device=weight.device)[None, :, None].expand(1, -1, length, -1)  # [1, D, T, D]
    turned, _ = apply_rotary_pos_emb(eye, eye, cos, sin)  # turned[0, j, t] = R[t] @ e_j
    return turned[0].permute(1, 2, 0)


class _FoldedLayer:
    def __init__(self, layer, rotation: torch.Tensor, dtype: torch.dtype | None):
        attention, mlp = layer.self_attn, layer.mlp
        before, after = layer.input_layernorm, layer.post_attention_layernorm
        self.eps = (before.variance_epsilon, after.variance_epsilon)
        self.q = _Projection(attention.q_proj, _norm_scale(before), rotation * attention.scaling, dtype)
        self.k = _Projection(attention.k_proj, _norm_scale(before), rotation, dtype)
        self.v = _Projection(attention.v_proj, _norm_scale(before), dtype=dtype)
        self.gate = _Projection(mlp.gate_proj, _norm_scale(after), dtype=dtype)
        self.up = _Projection(mlp.up_proj, _norm_scale(after), dtype=dtype)
        self.o, self.down = _Projection(attention.o_proj, dtype=dtype), _Projection(mlp.down_proj, dtype=dtype)
        self.act = mlp.act_fn


def _folded_llama(model, length: int, dtype: torch.dtype | None):
    """The folded layers of a LlamaForCausalLM (their products' weights in `dtype` when given) and its output
    projection (float32: _logits)."""
    rotation = _rotations(model, length)
    return ([_FoldedLayer(layer, rotation, dtype) for layer in model.model.layers],
            _Projection(model.lm_head, _norm_scale(model.model.norm)))


_FOLDED = weakref.WeakKeyDictionary()  # model -> {fold: (what the folding read, what it gave)}


def weights_key(model) -> tuple:
    """What changes when the model's weights do: a parameter's _version counts its in-place updates (an optimizer
    step, load_state_dict), its data_ptr moves with .to(device or dtype)."""
    return tuple(_parameter_states(model, []))


def _parameter_states(module, out: list) -> list:
    """(data_ptr, _version) of every parameter of `module` and its submodules, read from their dictionaries: the
    key over `parameters()` (a generator over named_modules, which deduplicates) took 55 us for llama in a loop of
    its own, this one 13 us (BENCHMARKS.md, "The one-flow loop in NumPy"). A shared parameter appears once per
    module that holds it, which a key can afford."""
    out += [(p.data_ptr(), p._version) for p in module._parameters.values() if p is not None]
    for child in module._modules.values():
        if child is not None:
            _parameter_states(child, out)
    return out


@torch.no_grad()
def _folded(model, length: int, fold, weights: tuple | None):
    """fold(model, length, dtype), kept until the model's `weights` (weights_key, read here if None) or the autocast
    dtype change. The folding's own products run in the weights' precision, its results are then stored in the
    autocast dtype."""
    device = model.get_input_embeddings().weight.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
    key = (length, dtype, weights_key(model) if weights is None else weights)
    kept = _FOLDED.setdefault(model, {})
    if fold not in kept or kept[fold][0] != key:
        with torch.autocast(device, enabled=False):
            kept[fold] = key, fold(model, length, dtype)
    return kept[fold][1]


def _rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' LlamaRMSNorm or MambaRMSNorm of float32 x (the residual stream, float32 under autocast too)
    over sqrt(d), without its weight: x / sqrt(sum(x^2) + d eps). The weight and sqrt(d) are folded into the
    projections after it (_norm_scale). Written out with a sum: 10 ATen calls at one flow, F.rms_norm 24."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + x.shape[-1] * eps)


def _norm_scale(norm) -> torch.Tensor:
    """What _rms leaves to the projections after a norm: its weight [d] times sqrt(d)."""
    return norm.weight * len(norm.weight) ** 0.5


def _logits(head: _Projection, x: torch.Tensor) -> torch.Tensor:
    """float32 logits [B, V] whatever the precision of the layers before: under bf16 autocast, logits rounded to
    8 bits of mantissa tie among tokens, and ties change what top-k keeps."""
    with torch.autocast(x.device.type, enabled=False):
        return head(x.float())


class MambaDecoder:
    def __init__(self, model, batch: int, length: int, weights: tuple | None = None):
        config, weight = model.config, model.get_input_embeddings().weight
        self.model = model
        layers, width = config.num_hidden_layers, config.intermediate_size
        self._conv = _Rows((layers, batch, width, config.conv_kernel), 1, weight.device, weight.dtype, zeros=True)
        # the scan's state stays float32 whatever the weights, as in transformers: it accumulates over every step
        self._ssm = _Rows((layers, batch, width, config.state_size), 1, weight.device, torch.float32, zeros=True)
        self.blocks, self.head = _folded(model, length, _folded_mamba, weights)
        # mamba's ClassAddedEmbedding adds the class token's embedding at every position: kept from the first step,
        # in a buffer of its own like the rest of the state (GraphedDecoder replays steps that read it where it is)
        self.adds_class = getattr(model.backbone.embeddings, "adds_first_token", False)
        self._class = _Rows((batch, config.hidden_size), 0, weight.device, weight.dtype) if self.adds_class else None
        self.has_class = False

    conv = property(lambda self: self._conv.state)
    ssm = property(lambda self: self._ssm.state)
    class_embedding = property(lambda self: self._class.state if self.has_class else None)

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits [B, V] (float32) of the next token after `ids` [B], the tokens at the current position
        (the class tokens at the first step)."""
        x = F.embedding(ids, self.model.backbone.embeddings.weight)
        if self.adds_class:
            if not self.has_class:
                self._class.state.copy_(x)
                self.has_class = True
            x = x + self.class_embedding
        for p, mixer, conv, ssm in zip(self.blocks, (block.mixer for block in self.model.backbone.layers), self.conv,
                                       self.ssm):
            xs, z = p.in_proj(_rms(x, p.eps)).chunk(2, dim=-1)  # [B, E] each
            conv.copy_(conv.roll(-1, dims=-1))
            conv[..., -1] = xs
            xs = (conv * mixer.conv1d.weight[:, 0]).sum(-1)
            if mixer.conv1d.bias is not None:
                xs = xs + mixer.conv1d.bias
            xs = mixer.act(xs)
            rank = mixer.dt_proj.in_features
            dt, B, C = torch.split(p.x_proj(xs), [rank, mixer.ssm_state_size, mixer.ssm_state_size], dim=-1)
            dt = F.softplus(p.dt_proj(dt))  # [B, E]
            # exp(dt A) as 2^(dt A log2(e)): torch.exp opens a parallel region above 2,048 elements, and at one flow
            # ([1, E, N] = 2,304 here) waking the thread that waits passively took longer than the whole layer;
            # one [B, E, N] product, not two
            ssm.mul_(torch.exp2(dt[..., None] * p.A_log2e)).add_((dt * xs)[..., None] * B[:, None])
            y = (ssm @ C[..., None].float())[..., 0] + xs * mixer.D
            x = x + p.out_proj((y * mixer.act(z)).to(z.dtype))
        return _logits(self.head, _rms(x, self.model.backbone.norm_f.variance_epsilon))

    def snapshot(self) -> tuple:
        """The state after the steps so far (convolution inputs, scan state, class embedding), for `restore`."""
        return self.conv.clone(), self.ssm.clone(), None if self.class_embedding is None else self.class_embedding.clone()

    def restore(self, snapshot: tuple, rows: torch.Tensor) -> None:
        """Continue from the flows at `rows` of `snapshot` (rows may repeat; this decoder now has len(rows) flows, at
        most as many as it was made for)."""
        conv, ssm, class_embedding = snapshot
        self._conv.rows(len(rows))
        self._ssm.rows(len(rows))
        self.conv.copy_(conv[:, rows])
        self.ssm.copy_(ssm[:, rows])
        self.has_class = class_embedding is not None
        if self.has_class:
            self._class.rows(len(rows))
            self.class_embedding.copy_(class_embedding[rows])

    def keep(self, rows: torch.Tensor) -> None:
        """Go on with only the flows at `rows` (indices into the current batch)."""
        self._conv.keep(rows)
        self._ssm.keep(rows)
        if self.has_class:
            self._class.keep(rows)


class _FoldedBlock:
    def __init__(self, block, dtype: torch.dtype | None):
        mixer = block.mixer
        self.eps = block.norm.variance_epsilon
        self.in_proj = _Projection(mixer.in_proj, _norm_scale(block.norm), dtype=dtype)
        self.x_proj, self.dt_proj, self.out_proj = (_Projection(mixer.x_proj, dtype=dtype),
                                                    _Projection(mixer.dt_proj, dtype=dtype),
                                                    _Projection(mixer.out_proj, dtype=dtype))
        self.A_log2e = -torch.exp(mixer.A_log.float()) / math.log(2)  # A log2(e) [E, N], float32 as the scan's state


def _folded_mamba(model, length: int, dtype: torch.dtype | None):
    """The folded blocks of a MambaForCausalLM (their products' weights in `dtype` when given) and its output projection
    (float32: _logits). length: unused, every step is alike."""
    return ([_FoldedBlock(block, dtype) for block in model.backbone.layers],
            _Projection(model.lm_head, _norm_scale(model.backbone.norm_f)))
