"""cvae: a conditional variational autoencoder over flows (the paper's CVAE baseline), in plain PyTorch.

Kingma et al., "Semi-supervised Learning with Deep Generative Models", NeurIPS 2014 (the conditional VAE).
Encoder and decoder see the class one-hot; the decoder has three heads whose outputs are always a valid
flow: the length (a categorical over 1..N), the direction of each packet (a Bernoulli), and the size of
each packet (in [1, max_size] through a sigmoid). Only the packets inside the length count in the loss.

Glossary (code name: the paper's term and Kingma et al.'s symbols):
    hidden_sizes   hidden 500/250: the encoder's layers (the decoder mirrors them)
    latent_size    "intermediate 20" in Table I: the size of z
    beta           the weight of KL(q(z | x, y) || N(0, I)) beside the reconstruction term (1 = the plain ELBO)
    y              the class, one-hot, given to encoder q(z | x, y) and decoder p(x | z, y)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from netsynth.flows import FlowSet
from netsynth.models.neural import NeuralGenerator
from netsynth.models.options import SampleOptions
from netsynth.train import resolve_device


@dataclass
class CVAEConfig:
    hidden_sizes: tuple[int, int] = (500, 250)
    latent_size: int = 20
    beta: float = 1.0  # weight of the KL term


class CVAEModule(nn.Module):
    def __init__(self, n_packets: int, n_classes: int, hidden: tuple[int, int], latent: int):
        super().__init__()
        self.n_packets, self.n_classes, self.latent = n_packets, n_classes, latent
        h1, h2 = hidden
        self.encoder = nn.Sequential(nn.Linear(3 * n_packets + n_classes, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU())
        self.to_stats = nn.Linear(h2, 2 * latent)
        self.decoder = nn.Sequential(nn.Linear(latent + n_classes, h2), nn.ReLU(), nn.Linear(h2, h1), nn.ReLU())
        self.to_flow = nn.Linear(h1, n_packets + n_packets + n_packets)  # length logits, direction logits, size

    def decode(self, z, onehot):
        out = self.to_flow(self.decoder(torch.cat([z, onehot], dim=1)))
        N = self.n_packets
        return out[:, :N], out[:, N:2 * N], torch.sigmoid(out[:, 2 * N:])

    def forward(self, x, onehot):
        mu, logvar = self.to_stats(self.encoder(torch.cat([x, onehot], dim=1))).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z, onehot), mu, logvar


class CVAE(NeuralGenerator):
    kind = "cvae"
    Config = CVAEConfig
    description = "conditional VAE (paper: hidden 500/250, latent 20) with length, direction and size heads"
    sample_options = frozenset({"device"})  # all flows in one batch: the decoder is a small MLP
    train_defaults = {"epochs": 60}

    def _build(self):
        return CVAEModule(self.n_packets_, len(self.classes_), tuple(self.config.hidden_sizes), self.config.latent_size)

    def _tensors(self, train: FlowSet):
        size = torch.from_numpy(train.size.astype(np.float32) / self.max_size_)
        up = torch.from_numpy((train.direction > 0).astype(np.float32))
        real = torch.from_numpy((train.direction != 0).astype(np.float32))
        return size, up, real, torch.from_numpy(train.codes.astype(np.int64))

    def _loss(self, module, size, up, real, codes):
        onehot = F.one_hot(codes, module.n_classes).float()
        x = torch.cat([size, up, real], dim=1)
        (length_logits, dir_logits, size_pred), mu, logvar = module(x, onehot)
        length = real.sum(1).long() - 1
        n_real = real.sum().clamp(min=1)
        rec = (F.cross_entropy(length_logits, length, reduction="sum")
               + (F.binary_cross_entropy_with_logits(dir_logits, up, reduction="none") * real).sum()
               + 100.0 * ((size_pred - size) ** 2 * real).sum())
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return (rec + self.config.beta * kl) / len(codes) * (len(codes) / n_real)

    @torch.inference_mode()
    def _sample(self, codes: np.ndarray, seed: int, options: SampleOptions) -> FlowSet:
        device = resolve_device(options.device)
        module = self.module_.to(device).eval()
        gen = torch.Generator(device=device).manual_seed(seed)
        c = torch.from_numpy(codes.astype(np.int64)).to(device)
        z = torch.randn((len(codes), module.latent), generator=gen, device=device)
        length_logits, dir_logits, size = module.decode(z, F.one_hot(c, module.n_classes).float())
        length = torch.multinomial(torch.softmax(length_logits, 1), 1, generator=gen)[:, 0] + 1
        up = torch.rand(dir_logits.shape, generator=gen, device=device) < torch.sigmoid(dir_logits)
        sizes = torch.clamp(torch.round(size * self.max_size_), 1, self.max_size_).long()
        signed = torch.where(up, sizes, -sizes)
        signed[torch.arange(self.n_packets_, device=device)[None, :] >= length[:, None]] = 0
        return self._to_flows(signed.cpu().numpy(), codes)
