"""mamba: a small Mamba state-space model (transformers MambaForCausalLM) over flow tokens.

Glossary (code name: the paper's term, Table I, and Gu & Dao's symbols):
    hidden_size        hidden 72 (D, the model width)
    intermediate_size  intermediate 144 (E * D, the expanded width of the selective scan)
    state_size         N in Gu & Dao: the size of each channel's SSM state h_t
    num_hidden_layers  4 layers
    class_every_step   the class token's embedding added to every position's input (ClassAddedEmbedding)
    codec_             TrafficMatrix2Token, as for llama (models/sequence.py)

Why the class at every step: llama's attention reads the class token at every position, but a selective scan
must carry it forward in a state of N numbers per channel that every packet rewrites. Adding its embedding to
every input (as conditional sequence models inject a condition at every step, e.g. WaveNet's global
conditioning, van den Oord et al. 2016) costs no parameter; on fgnet-sample it lowered the converged
validation loss from 2.050 to 1.921 (BENCHMARKS.md, "Mamba's class at every step"). The weights keep
transformers' layout, but a plain `MambaForCausalLM` given them computes without the addition.

transformers uses the CUDA kernels (mamba-ssm, causal-conv1d) when they are installed and falls back to
its PyTorch reference implementation otherwise, so the same code runs on a CPU. On a GPU that fallback is
much slower, and it happens without a word; `runtime_notes` says so in one line (training log, doctor).
"""
from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass

import numpy as np
import torch

from netsynth.models.sequence import CausalLMGenerator, TokenSettings


@dataclass
class MambaConfig(TokenSettings):
    hidden_size: int = 72
    intermediate_size: int = 144
    num_hidden_layers: int = 4
    state_size: int = 16
    class_every_step: bool = True


class ClassAddedEmbedding(torch.nn.Embedding):
    """An embedding [B, T] -> [B, T, D] that adds the first token's (the class token's) embedding to every
    position's. A subclass of nn.Embedding: the state dict keeps transformers' keys. Over a whole prefix only:
    a cached step of transformers' generate() sees one token; netsynth's decoder adds the class itself."""
    adds_first_token = True

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = super().forward(ids)
        return x + x[:, :1]


class Mamba(CausalLMGenerator):
    kind = "mamba"
    Config = MambaConfig
    description = "Mamba state-space model over flow tokens (paper: hidden 72, intermediate 144, 4 layers)"

    def runtime_notes(self, device) -> list[str]:
        return mamba_kernel_notes(device)

    def _build(self):
        from transformers import MambaConfig as HFConfig, MambaForCausalLM

        c = self.config
        model = MambaForCausalLM(HFConfig(
            vocab_size=self.codec_.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
            num_hidden_layers=c.num_hidden_layers, state_size=c.state_size, pad_token_id=0, eos_token_id=1,
            bos_token_id=None, tie_word_embeddings=False))
        if c.class_every_step:
            plain = model.backbone.embeddings
            model.backbone.embeddings = ClassAddedEmbedding(*plain.weight.shape, _weight=plain.weight.data)
        return model

    def _restore(self, config: dict, state: dict[str, np.ndarray]) -> None:
        if "class_every_step" not in config["settings"]:  # saved before the option: the class was the prompt alone
            self.config = dataclasses.replace(self.config, class_every_step=False)
        super()._restore(config, state)


MAMBA_KERNELS = ("mamba_ssm", "causal_conv1d")


def mamba_kernel_notes(device) -> list[str]:
    """One line when mamba runs on a GPU without its CUDA kernels (transformers then uses its slower PyTorch path)."""
    missing = [name for name in MAMBA_KERNELS if importlib.util.find_spec(name) is None]
    if str(device).startswith("cuda") and missing:
        return [f"mamba: CUDA kernels {missing} not installed, using transformers' slower PyTorch path "
                "(pip install mamba-ssm causal-conv1d for the fast one)"]
    return []
