"""Class-conditioned causal language models over flow tokens (llama, mamba): training loss and sampling.

Sampling is a hand-written batched loop over transformers' DynamicCache rather than `generate()`: it masks
impossible tokens (<PAD>, class tokens, <UNK>, and <EOS> before the first packet) and draws each token by
inverse-CDF sampling, one uniform number per flow against the cumulative distribution. That is exact like
Gumbel-max but draws B numbers per step instead of B x vocabulary, which dominates the cost on a CPU
(about 3x faster than `generate()` at batch 1024, see BENCHMARKS.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from netsynth.codecs.tokens import EOS, PAD, TokenCodec
from netsynth.flows import FlowSet
from netsynth.models.neural import NeuralGenerator


@dataclass
class SamplingSettings:
    vocabulary: str = "full"  # full (the paper's 2 x max_size lengths) | observed (lengths seen in training)
    temperature: float = 1.0
    top_k: int = 0  # 0 = no top-k cut
    sample_batch_size: int = 1024


class CausalLMGenerator(NeuralGenerator):
    def _prepare(self, train: FlowSet) -> None:
        self.codec_ = TokenCodec.fit(train, self.max_size_, self.config.vocabulary)

    def _restore_codec(self, config: dict) -> None:
        self.codec_ = TokenCodec.from_dict(config["codec"])

    def _extra_config(self) -> dict:
        return {"codec": self.codec_.to_dict()}

    def _tensors(self, train: FlowSet):
        return (torch.from_numpy(self.codec_.encode(train)),)

    def _loss(self, module, ids):
        # The output layer runs only where there is a token to predict: most positions of short flows are
        # <PAD>, and the vocabulary-wide projection is the largest matmul (1.5x faster training on IoT Sentinel).
        hidden = module.base_model(input_ids=ids).last_hidden_state[:, :-1]
        target = ids[:, 1:]
        keep = target != PAD
        logits = module.get_output_embeddings()(hidden[keep]).float()
        return F.cross_entropy(logits, target[keep])

    def _sample(self, codes: np.ndarray, seed: int) -> FlowSet:
        tokens = sample_tokens(self.module_, self.codec_, codes, seed=seed, temperature=self.config.temperature,
                               top_k=self.config.top_k, batch_size=self.config.sample_batch_size, device=self.device)
        return self.codec_.decode(tokens, codes)


@torch.inference_mode()
def sample_tokens(model, codec: TokenCodec, codes: np.ndarray, seed: int, temperature: float = 1.0, top_k: int = 0,
                  batch_size: int = 1024, device: torch.device | str = "cpu") -> np.ndarray:
    """Token ids [n, N] after the class prompt; a flow's tokens after its <EOS> are meaningless."""
    from transformers import DynamicCache

    if temperature <= 0:
        raise ValueError("temperature must be positive")
    if next(model.parameters()).device != torch.device(device):  # quantized weights cannot be moved in place
        model = model.to(device)
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    first = codec.first_length
    allowed = torch.zeros(codec.vocab_size, dtype=torch.bool, device=device)
    allowed[first:] = True
    bias = torch.where(allowed, 0.0, -torch.inf)
    bias_after_first = bias.clone()
    bias_after_first[EOS] = 0.0
    out = np.empty((len(codes), codec.n_packets), dtype=np.int64)
    for start in range(0, len(codes), batch_size):
        chunk = torch.from_numpy(codec.class_token(codes[start:start + batch_size])).to(device)
        ids = chunk[:, None]
        cache = DynamicCache(config=model.config)
        done = torch.zeros(len(chunk), dtype=torch.bool, device=device)
        steps = []
        for step in range(codec.n_packets):
            logits = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1].float()
            logits = logits / temperature + (bias if step == 0 else bias_after_first)
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.shape[1]), dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, -torch.inf)
            cum = torch.softmax(logits, dim=-1).cumsum_(dim=-1)
            u = torch.rand((len(chunk), 1), generator=gen, device=device) * cum[:, -1:]
            ids = torch.searchsorted(cum, u).clamp_(max=codec.vocab_size - 1)
            steps.append(ids)
            done |= ids[:, 0] == EOS
            if done.all():
                break
        body = torch.cat(steps, dim=1).cpu().numpy()
        if body.shape[1] < codec.n_packets:
            body = np.hstack([body, np.full((len(body), codec.n_packets - body.shape[1]), EOS)])
        out[start:start + len(chunk)] = body
    return out
