"""Step-by-step decoding of llama and mamba over a preallocated cache, for the sampler (models/sequence.py).

Each decoder runs the model's own layers (its norms, projections, MLP and rotary embedding, so int8-quantized
Linear layers work too) and owns only the state between steps:

    LlamaDecoder   k, v [layers, T, B, kv_heads, head_dim]: keys and values of every position so far, position
                   first, so that dropping flows moves only the positions written; the query of step t attends over
                   positions 0..t (all flows of a batch are at the same position)
    MambaDecoder   conv [layers, B, E, K]: the last K inputs of the causal convolution (K = conv_kernel);
                   ssm [layers, B, E, N]: the selective scan's state h_t (Gu & Dao, Algorithm 2: h_t = exp(dt A) h_{t-1}
                   + dt B_t x_t, y_t = C_t h_t + D x_t, gated by silu(z_t)); E = intermediate_size, N = state_size

Why not transformers' own cache: its cache classes and the forward keyword that takes them changed across the 5.x
releases netsynth supports (a renamed keyword was silently dropped, issue #8), none of them can drop the rows of
flows that have ended, and a full transformers forward per step spends most of a small model's time outside the
arithmetic. `keep(rows)` drops finished flows, so a batch costs what its flows' own lengths cost, not the longest's.
The sampler checks every decoder against a full transformers forward pass over the prefix (the slow reference).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def decoder_for(model, batch: int, length: int):
    """The decoder for a transformers LlamaForCausalLM or MambaForCausalLM, for `batch` flows of up to `length` tokens."""
    cls = {"LlamaForCausalLM": LlamaDecoder, "MambaForCausalLM": MambaDecoder}.get(type(model).__name__)
    if cls is None:
        raise TypeError(f"no decoder for {type(model).__name__}")
    return cls(model, batch, length)


class LlamaDecoder:
    def __init__(self, model, batch: int, length: int):
        config, weight = model.config, model.get_input_embeddings().weight
        self.model = model
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        shape = (config.num_hidden_layers, length, batch, self.kv_heads, self.head_dim)
        # empty, not zeros: step t writes position t before anything reads it
        self.k = torch.empty(shape, device=weight.device, dtype=weight.dtype)
        self.v = torch.empty(shape, device=weight.device, dtype=weight.dtype)
        positions = torch.arange(length, device=weight.device)[None]
        cos, sin = model.model.rotary_emb(self.k[0, 0], positions)  # [1, T, head_dim]
        self.cos, self.sin = cos[0], sin[0]
        self.t = 0

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits [B, V] (float32) of the next token after `ids` [B], the tokens at position t."""
        x = self.model.model.embed_tokens(ids)
        t, cos, sin = self.t, self.cos[self.t], self.sin[self.t]
        for layer, k_cache, v_cache in zip(self.model.model.layers, self.k, self.v):
            attention, mlp = layer.self_attn, layer.mlp
            h = _norm(layer.input_layernorm, x)
            q = _rotate(_linear(attention.q_proj, h).unflatten(-1, (self.heads, self.head_dim)), cos, sin)
            k_cache[t] = _rotate(_linear(attention.k_proj, h).unflatten(-1, (-1, self.head_dim)), cos, sin)
            v_cache[t] = _linear(attention.v_proj, h).unflatten(-1, (-1, self.head_dim))
            out = self._attend(q, k_cache[:t + 1], v_cache[:t + 1])
            x = x + _linear(attention.o_proj, out)
            h = _norm(layer.post_attention_layernorm, x)
            x = x + _linear(mlp.down_proj, mlp.act_fn(_linear(mlp.gate_proj, h)) * _linear(mlp.up_proj, h))
        self.t += 1
        return _logits(self.model.lm_head, _norm(self.model.model.norm, x))

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention [B, heads * head_dim] of one query per flow, q [B, heads, head_dim], over every key so far,
        k and v [t + 1, B, kv_heads, head_dim] (no mask: nothing comes after the query). Head h reads key/value
        head h // (heads / kv_heads), as transformers' repeat_kv. Written out because scaled_dot_product_attention
        at one query per flow ran 2-5x slower than these products and sums at batch 1,024 (BENCHMARKS.md)."""
        q = q.unflatten(1, (self.kv_heads, -1))  # [B, kv_heads, group, head_dim]
        scores = (k[..., None, :] * q).sum(-1) * self.head_dim ** -0.5  # [t + 1, B, kv_heads, group]
        weights = scores.softmax(dim=0)
        return (weights[..., None] * v[..., None, :]).sum(0).flatten(1)

    def keep(self, rows: torch.Tensor) -> None:
        """Go on with only the flows at `rows` (indices into the current batch): the positions written so far
        move to the first len(rows) slots of the cache, in place."""
        for cache in (self.k, self.v):
            cache[:, :self.t, :len(rows)] = cache[:, :self.t, rows]
        self.k, self.v = self.k[:, :, :len(rows)], self.v[:, :, :len(rows)]


# At one token per flow a step is hundreds of tiny operations, so the Python around each one costs more than its
# arithmetic. _linear and _norm do what a plain nn.Linear and transformers' RMSNorm modules do, in one call and
# without nn.Module.__call__ (sampling registers no hooks); any other layer (an int8-quantized Linear) runs as itself.
def _linear(layer, x: torch.Tensor) -> torch.Tensor:
    if type(layer) is torch.nn.Linear:
        return F.linear(x, layer.weight, layer.bias)
    return layer(x)


def _norm(norm, x: torch.Tensor) -> torch.Tensor:
    """transformers' LlamaRMSNorm or MambaRMSNorm of x, for float32 x (the residual stream, which stays float32 under
    autocast; rms_norm is not among the operations autocast lowers)."""
    return F.rms_norm(x, norm.weight.shape, norm.weight, norm.variance_epsilon)


def _logits(head, x: torch.Tensor) -> torch.Tensor:
    """float32 logits [B, V] whatever the precision of the layers before: under bf16 autocast, logits rounded to
    8 bits of mantissa tie among tokens, and ties change what top-k keeps."""
    with torch.autocast(x.device.type, enabled=False):
        return head(x.float())


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of x [B, heads, head_dim] at one position (transformers' rotate_half layout)."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


class MambaDecoder:
    def __init__(self, model, batch: int, length: int):
        config, weight = model.config, model.get_input_embeddings().weight
        self.model = model
        layers, width = config.num_hidden_layers, config.intermediate_size
        self.conv = torch.zeros(layers, batch, width, config.conv_kernel, device=weight.device, dtype=weight.dtype)
        # the scan's state stays float32 whatever the weights, as in transformers: it accumulates over every step
        self.ssm = torch.zeros(layers, batch, width, config.state_size, device=weight.device)
        self.A = [-torch.exp(block.mixer.A_log.float()) for block in model.backbone.layers]  # [E, N]
        # mamba's ClassAddedEmbedding adds the class token's embedding at every position: kept from the first step
        self.adds_class = getattr(model.backbone.embeddings, "adds_first_token", False)
        self.class_embedding = None

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits [B, V] (float32) of the next token after `ids` [B], the tokens at the current position
        (the class tokens at the first step)."""
        x = F.embedding(ids, self.model.backbone.embeddings.weight)
        if self.adds_class:
            if self.class_embedding is None:
                self.class_embedding = x
            x = x + self.class_embedding
        for block, conv, ssm, A in zip(self.model.backbone.layers, self.conv, self.ssm, self.A):
            mixer = block.mixer
            xs, z = _linear(mixer.in_proj, _norm(block.norm, x)).chunk(2, dim=-1)  # [B, E] each
            conv.copy_(conv.roll(-1, dims=-1))
            conv[..., -1] = xs
            xs = (conv * mixer.conv1d.weight[:, 0]).sum(-1)
            if mixer.conv1d.bias is not None:
                xs = xs + mixer.conv1d.bias
            xs = mixer.act(xs)
            rank = mixer.dt_proj.in_features
            dt, B, C = torch.split(_linear(mixer.x_proj, xs), [rank, mixer.ssm_state_size, mixer.ssm_state_size], dim=-1)
            dt = F.softplus(_linear(mixer.dt_proj, dt))  # [B, E]
            ssm.mul_(torch.exp(dt[..., None] * A)).add_((dt * xs)[..., None] * B[:, None])  # one [B, E, N] product, not two
            y = (ssm @ C[..., None].float())[..., 0] + xs * mixer.D
            x = x + _linear(mixer.out_proj, (y * mixer.act(z)).to(z.dtype))
        return _logits(self.model.lm_head, _norm(self.model.backbone.norm_f, x))

    def keep(self, rows: torch.Tensor) -> None:
        """Go on with only the flows at `rows` (indices into the current batch), moved in place to the first
        len(rows) slots: no fresh state of the batch's size at every step where a flow ends."""
        for state in (self.conv, self.ssm):
            state[:, :len(rows)] = state[:, rows]
        self.conv, self.ssm = self.conv[:, :len(rows)], self.ssm[:, :len(rows)]
        if self.class_embedding is not None:
            self.class_embedding = self.class_embedding[rows]
