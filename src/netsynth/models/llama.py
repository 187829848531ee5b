"""llama: a small LLaMA-style decoder (transformers LlamaForCausalLM) over flow tokens, the paper's best model.

Glossary (code name: the paper's term, Table I):
    hidden_size          hidden 160: the width of every token's representation
    intermediate_size    intermediate 320: the width of the SwiGLU feed-forward block
    num_hidden_layers    4 layers; num_attention_heads: 8 heads
    codec_ (TokenCodec)  TrafficMatrix2Token and Token2TrafficMatrix: ids [n, N + 2] = <CLASS_k> t_1..t_len <EOS> <PAD>..
    vocabulary           full: the paper's 2 x PL_max signed-length tokens; observed: only those seen in training
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from netsynth.models.sequence import CausalLMGenerator, TokenSettings


@dataclass
class LlamaConfig(TokenSettings):
    hidden_size: int = 160
    intermediate_size: int = 320
    num_hidden_layers: int = 4
    num_attention_heads: int = 8


class Llama(CausalLMGenerator):
    kind = "llama"
    Config = LlamaConfig
    description = "LLaMA-style transformer over flow tokens (paper: hidden 160, intermediate 320, 4 layers, 8 heads)"
    # trained to convergence (early stopping), 1e-3 reached a lower validation loss than 3e-3 on IoT Sentinel
    # (0.936 vs 0.956) and on fgnet-sample (1.676 vs 1.706), where TSTR / train on real rose from 0.76 to 0.85
    train_defaults = {**CausalLMGenerator.train_defaults, "lr": 1e-3}
    # precision auto may choose bf16 (where the chip is fast at it): TSTR and the six metrics were within seed noise
    # of float32 (BENCHMARKS.md); mamba's scan is elementwise work, which bf16 made slower on a CPU (0.70x sampling)
    auto_bf16 = True
    # --compile: an epoch 1.24-1.59x faster under bf16 on a 2-core CPU after 32-50 s of compilation (BENCHMARKS.md,
    # "Compiled training"). Not mamba: compiling transformers' sequential scan took 107 s and failed on a batch of
    # another size (dynamic shapes); the CVAE and NetDiffus-NR draw random numbers in their losses, which inductor
    # draws otherwise than eager.
    train_options = CausalLMGenerator.train_options | {"compile"}

    @contextlib.contextmanager
    def _training_on(self, device):
        # On a CPU, transformers' eager attention (two products and a softmax) trained an epoch 1.19-1.33x faster than
        # scaled_dot_product_attention under bf16 autocast at these 11-token sequences, as fast in float32, with the
        # same gradients to 5e-7 of the largest (BENCHMARKS.md, "Attention for training"); on a GPU, where nothing
        # was measured, the fused kernel stays.
        self.module_.config._attn_implementation = "eager" if device.type == "cpu" else "sdpa"
        if device.type != "cpu":  # the table was measured on a CPU only
            yield
            return
        body, positions = self.module_.model, self.module_.config.max_position_embeddings
        rotary, body.rotary_emb = body.rotary_emb, RotaryTable(body.rotary_emb, positions)
        try:
            yield
        finally:
            body.rotary_emb = rotary

    def _build(self):
        from transformers import LlamaConfig as HFConfig, LlamaForCausalLM

        c = self.config
        return LlamaForCausalLM(HFConfig(
            vocab_size=self.codec_.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
            num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
            max_position_embeddings=self.codec_.seq_len, pad_token_id=0, eos_token_id=1, bos_token_id=None,
            tie_word_embeddings=False))


class RotaryTable(torch.nn.Module):
    """transformers' LlamaRotaryEmbedding for positions 0..T-1, its cos and sin computed once, for training on a CPU,
    where netsynth's loss runs every flow from position 0 without a cache. Compiled (`--compile`), inductor fused the rotary
    embedding's cos and sin into the kernels that apply them to q and k (by the kernels' names), where a table is
    read: a compiled bf16 epoch of IoT Sentinel took 3.20-3.32 s without the table and 2.90-2.99 s with it in two
    A/Bs, float32 6.75-6.83 against 6.38-6.52 s (BENCHMARKS.md, "The rotary embedding as a table"). Eager, the same
    losses to the bit in the same time. It is not saved (its buffers are not in the state dict) and leaves when
    training ends (Llama._training_on)."""

    def __init__(self, rotary, positions: int):
        super().__init__()
        device = rotary.inv_freq.device
        with torch.no_grad():
            cos, sin = rotary(torch.zeros(1, device=device), torch.arange(positions, device=device)[None])
        self.register_buffer("cos", cos, persistent=False)  # [1, positions, head_dim]
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin) [1, T, head_dim] in x's dtype for position_ids [B, T], which must be 0..T-1 (checked where not
        compiled: the check would break the graph)."""
        length = position_ids.shape[-1]
        if not torch.compiler.is_compiling() and not (
                position_ids == torch.arange(length, device=position_ids.device)).all():
            raise ValueError("RotaryTable serves positions 0..T-1 only")
        return self.cos[:, :length].to(x.dtype), self.sin[:, :length].to(x.dtype)
