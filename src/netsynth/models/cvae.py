"""cvae: a conditional variational autoencoder over flows (the paper's CVAE baseline), in plain PyTorch.

Kingma et al., "Semi-supervised Learning with Deep Generative Models", NeurIPS 2014 (the conditional VAE).
Encoder and decoder see the class one-hot. The decoder's likelihood puts its mass on exact values, as real
traffic does (a protocol's messages have fixed sizes): the length is a categorical over 1..N, and each packet
a categorical over the signed lengths seen in training (size and direction at once), through one output
layer shared by every position. A Gaussian or sigmoid size head, as in 0.1.0, blurs those values, and its
flows carried almost no class (TSTR near chance on IoT Sentinel).

Posterior collapse is guarded by free bits (Kingma et al., "Improved Variational Inference with Inverse
Autoregressive Flow", NeurIPS 2016): a latent dimension's KL, averaged over the batch, costs nothing below
`free_bits` nats, so the encoder is not pushed to ignore the flow. After training, the KL of every latent
dimension on the training flows is kept in `history_["kl_per_latent_dim"]` and logged.

Sampling draws z from a Gaussian per class with the moments of that class's aggregate posterior (the mixture of the
training flows' q(z | x, y)), not from N(0, I): the "ex-post density estimation" of Ghosh et al., "From Variational
to Deterministic Autoencoders", ICLR 2020, for a VAE. The decoder was trained on posterior samples, and where the
aggregate posterior of a class does not fill N(0, I) the standard prior draws codes the decoder never saw
(measured in BENCHMARKS.md, "The CVAE's prior"). `prior="standard"` keeps N(0, I); so do models saved before it,
and models trained with DP, whose config then says `prior: standard` (the fitted Gaussians would describe training
flows outside the guarantee). The length and each packet are then drawn from the decoder's categoricals at the
sample option `temperature` (1, the default: the model's own distribution).

Glossary (code name: the paper's term and Kingma et al.'s symbols):
    hidden_sizes   hidden 500/250: the encoder's layers (the decoder mirrors them)
    latent_size    "intermediate 20" in Table I: the size of z
    beta           the weight of KL(q(z | x, y) || N(0, I)) beside the reconstruction term (1 = the plain ELBO)
    free_bits      lambda of free bits, in nats per latent dimension
    prior_mean, prior_scale   the Gaussian per class that z is drawn from: mean [C, latent], lower-triangular scale
                   [C, latent, latent] (zeros and identities: N(0, I))
    y              the class, one-hot, given to encoder q(z | x, y) and decoder p(x | z, y)
    values_        the signed lengths the packet heads choose among [V]; index 0 of `ids` is padding
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from netsynth.errors import NetsynthError
from netsynth.flows import FlowSet
from netsynth.models.neural import NeuralGenerator
from netsynth.models.options import FitOptions, SampleOptions
from netsynth.train import is_main_process, resolve_device

EMBED = 16  # width of a packet's value embedding in the encoder
PRIORS = ("class-posterior", "standard")


@dataclass
class CVAEConfig:
    hidden_sizes: tuple[int, int] = (500, 250)
    latent_size: int = 20
    beta: float = 1.0  # weight of the KL term
    free_bits: float = 0.1  # nats per latent dimension that the KL term does not penalise
    position_size: int = 64  # width of each packet's decoder feature, before the output layer over values
    prior: str = "class-posterior"  # what z is drawn from when sampling: class-posterior | standard (N(0, I))

    def __post_init__(self):
        if self.prior not in PRIORS:
            raise NetsynthError(f"prior must be one of {', '.join(PRIORS)}, got {self.prior!r}")


class CVAEModule(nn.Module):
    def __init__(self, n_packets: int, n_classes: int, n_values: int, hidden: tuple[int, int], latent: int,
                 position: int):
        super().__init__()
        self.n_packets, self.n_classes, self.latent, self.position = n_packets, n_classes, latent, position
        h1, h2 = hidden
        self.embed = nn.Embedding(n_values + 1, EMBED, padding_idx=0)
        self.encoder = nn.Sequential(nn.Linear(n_packets * EMBED + n_classes, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU())
        self.to_stats = nn.Linear(h2, 2 * latent)
        self.decoder = nn.Sequential(nn.Linear(latent + n_classes, h2), nn.ReLU(), nn.Linear(h2, h1), nn.ReLU())
        self.to_length = nn.Linear(h1, n_packets)
        self.to_positions = nn.Linear(h1, n_packets * position)
        self.to_value = nn.Linear(position, n_values)  # shared by every position
        self.register_buffer("prior_mean", torch.zeros(n_classes, latent))
        self.register_buffer("prior_scale", torch.eye(latent).repeat(n_classes, 1, 1))

    def encode(self, ids: torch.Tensor, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids [B, N] (0 = padding, v + 1 = values_[v]), onehot [B, C] -> mu, logvar [B, latent]."""
        x = torch.cat([self.embed(ids).flatten(1), onehot], dim=1)
        return self.to_stats(self.encoder(x)).chunk(2, dim=1)

    def decode(self, z: torch.Tensor, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> length logits [B, N] (length 1..N) and value logits [B, N, V]."""
        h = self.decoder(torch.cat([z, onehot], dim=1))
        positions = F.relu(self.to_positions(h)).view(len(h), self.n_packets, self.position)
        return self.to_length(h), self.to_value(positions)

    def forward(self, ids, onehot):
        mu, logvar = self.encode(ids, onehot)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z, onehot), mu, logvar


def every_length(max_size: int) -> np.ndarray:
    """Every signed length, -max_size..-1 and 1..max_size [2 max_size]."""
    full = np.arange(1, max_size + 1, dtype=np.int64)
    return np.concatenate([-full[::-1], full])


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per example and latent dimension [B, latent], in nats."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


class CVAE(NeuralGenerator):
    kind = "cvae"
    Config = CVAEConfig
    description = "conditional VAE (paper: hidden 500/250, latent 20), categorical heads over exact lengths"
    sample_options = frozenset({"device", "temperature"})  # all flows in one batch: the decoder is a small MLP
    # TSTR/real with 3e-3: 0.84 (IoT Sentinel), 0.44 (fgnet); 1e-3: 0.28 (fgnet)
    train_defaults = {"epochs": 60, "lr": 3e-3, "min_steps": 3000}

    def _prepare(self, train: FlowSet, private: bool) -> None:
        # under DP the heads cover every signed length up to max_size: the lengths seen would reveal single flows
        self.values_ = every_length(self.max_size_) if private else np.unique(train.signed[train.direction != 0]).astype(np.int64)

    def _restore_codec(self, config: dict) -> None:
        # without "values": a nominal model (`netsynth models`)
        self.values_ = np.asarray(config["values"], dtype=np.int64) if "values" in config else every_length(self.max_size_)

    def _extra_config(self) -> dict:
        return {"values": self.values_.tolist()}

    def _build(self):
        c = self.config
        return CVAEModule(self.n_packets_, len(self.classes_), len(self.values_), tuple(c.hidden_sizes),
                          c.latent_size, c.position_size)

    def _tensors(self, train: FlowSet):
        signed = train.signed.astype(np.int64)
        ids = np.where(signed != 0, np.searchsorted(self.values_, signed) + 1, 0)
        return torch.from_numpy(ids), torch.from_numpy(train.codes.astype(np.int64))

    def _loss(self, module, ids, codes):
        onehot = F.one_hot(codes, module.n_classes).float()
        (length_logits, value_logits), mu, logvar = module(ids, onehot)
        real = ids > 0
        n_real = real.sum().clamp(min=1)
        rec = (F.cross_entropy(length_logits, real.sum(1) - 1, reduction="sum")
               + F.cross_entropy(value_logits[real], ids[real] - 1, reduction="sum"))
        kl = kl_per_dim(mu, logvar).mean(0).clamp(min=self.config.free_bits).sum() * len(codes)
        return (rec + self.config.beta * kl) / n_real

    def _private_loss(self, module, ids, codes):
        """Each flow's own loss [B] (its free bits too, per flow rather than over the batch): DP-SGD assumes that no
        flow's gradient depends on another's."""
        rec, kl, n_real = self._flow_terms(module, ids, codes, sample_latent=True)
        kl = kl.clamp(min=self.config.free_bits).sum(1)
        return (rec + self.config.beta * kl) / n_real.clamp(min=1)

    def _flow_terms(self, module, ids, codes, sample_latent: bool):
        """Per flow: the reconstruction loss (nats), the KL per latent dimension, and the number of packets."""
        onehot = F.one_hot(codes, module.n_classes).float()
        if sample_latent:
            (length_logits, value_logits), mu, logvar = module(ids, onehot)
        else:  # the latent mean, for a deterministic score
            mu, logvar = module.encode(ids, onehot)
            length_logits, value_logits = module.decode(mu, onehot)
        real = ids > 0
        values = F.cross_entropy(value_logits.transpose(1, 2), (ids - 1).clamp(min=0), reduction="none")
        rec = F.cross_entropy(length_logits, real.sum(1) - 1, reduction="none") + (values * real).sum(1)
        return rec, kl_per_dim(mu, logvar), real.sum(1)

    @torch.inference_mode()
    def log_likelihood(self, flows: FlowSet) -> np.ndarray:
        """The evidence lower bound of each flow (nats; the latent mean decoded): the white-box attack's score."""
        self._check_fitted()
        present = flows.select(list(flows.present_counts()))  # classes without flows may be unknown to the model
        ids, codes = self._tensors(present.with_classes(self.classes_))
        device = next(self.module_.parameters()).device
        rec, kl, _ = self._flow_terms(self.module_.eval(), ids.to(device), codes.to(device), sample_latent=False)
        return -(rec + kl.sum(1)).cpu().numpy()

    def _fit(self, train: FlowSet, options: FitOptions) -> None:
        super()._fit(train, options)
        if options.dp_epsilon is not None:  # the fitted Gaussians would describe flows outside the guarantee
            self.config = dataclasses.replace(self.config, prior="standard")
        fitted = self.config.prior == "class-posterior"
        if fitted:
            mean, scale = class_gaussians(*self.encoded(train), train.codes, len(self.classes_))
            self.module_.prior_mean.copy_(mean)
            self.module_.prior_scale.copy_(scale)
        self.history_["kl_per_latent_dim"] = self.kl_per_latent_dim(train)
        if options.verbose and is_main_process():
            kl = self.history_["kl_per_latent_dim"]
            prior = ("a Gaussian per class fitted to the training flows' posteriors" if fitted
                     else "N(0, I) (DP training)" if options.dp_epsilon is not None else "N(0, I)")
            print(f"cvae: KL per latent dimension (nats) {' '.join(f'{k:.2f}' for k in kl)}; "
                  f"{sum(k > 0.01 for k in kl)} of {len(kl)} dimensions in use; latent codes will be drawn from "
                  f"{prior}", file=sys.stderr)

    @torch.inference_mode()
    def encoded(self, flows: FlowSet) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior q(z | x, y) of each of `flows`: mu and log variance [n, latent], on the model's device."""
        module = self.module_.eval()
        device = next(module.parameters()).device
        stats = [module.encode(ids.to(device), F.one_hot(codes.to(device), module.n_classes).float())
                 for ids, codes in zip(*(t.split(65536) for t in self._tensors(flows)))]
        return torch.cat([mu for mu, _ in stats]), torch.cat([logvar for _, logvar in stats])

    def _restore(self, config: dict, state: dict[str, np.ndarray]) -> None:
        if "prior_mean" not in state:  # saved before the class-posterior prior: it sampled from N(0, I)
            self.config = dataclasses.replace(self.config, prior="standard")
            n_classes, latent = len(config["classes"]), config["settings"]["latent_size"]
            state = {**state, "prior_mean": np.zeros((n_classes, latent), np.float32),
                     "prior_scale": np.tile(np.eye(latent, dtype=np.float32), (n_classes, 1, 1))}
        super()._restore(config, state)

    @torch.inference_mode()
    def kl_per_latent_dim(self, flows: FlowSet) -> list[float]:
        """Mean KL of each latent dimension over `flows`: near 0 for a dimension the model does not use."""
        return (kl_per_dim(*self.encoded(flows)).sum(0) / max(1, len(flows))).tolist()

    @torch.inference_mode()
    def _sample(self, codes: np.ndarray, seed: int, options: SampleOptions) -> FlowSet:
        device = resolve_device(options.device)
        module = self.module_.to(device).eval()
        gen = torch.Generator(device=device).manual_seed(seed)
        c = torch.from_numpy(codes.astype(np.int64)).to(device)
        z = torch.randn((len(codes), module.latent), generator=gen, device=device)
        for k in c.unique():  # class by class: a scale gathered per flow would be [n, latent, latent]
            rows = c == k
            z[rows] = module.prior_mean[k] + z[rows] @ module.prior_scale[k].T
        length_logits, value_logits = module.decode(z, F.one_hot(c, module.n_classes).float())
        length = draw_categorical(length_logits, options.temperature, gen) + 1
        index = draw_categorical(value_logits, options.temperature, gen).cpu().numpy()
        signed = self.values_[index]
        signed[np.arange(self.n_packets_)[None, :] >= length.cpu().numpy()[:, None]] = 0
        return self._to_flows(signed, codes)


def draw_categorical(logits: torch.Tensor, temperature: float, gen: torch.Generator) -> torch.Tensor:
    """One index per row of logits [..., K], drawn from softmax(logits / temperature) [...]. Below 1 the draw
    keeps to each packet's likelier values: given z and the class, the packets are drawn independently, and the
    spread of each one's categorical adds up over a flow (BENCHMARKS.md, "The CVAE's temperature")."""
    probs = torch.softmax(logits / temperature, -1)
    return torch.multinomial(probs.flatten(0, -2), 1, generator=gen).view(probs.shape[:-1])


def class_gaussians(mu: torch.Tensor, logvar: torch.Tensor, codes: np.ndarray, n_classes: int):
    """Mean [C, L] and Cholesky factor [C, L, L] of the Gaussian with the moments of each class's aggregate posterior,
    the mixture of N(mu_i, diag(var_i)) over its flows (mu, logvar [n, L]): the codes its decoder was trained on.
    mean = the average mu_i; covariance = the covariance of the mu_i + the average var_i. A class without flows keeps
    N(0, I)."""
    latent = mu.shape[1]
    mean = torch.zeros(n_classes, latent, dtype=torch.float64)
    scale = torch.eye(latent, dtype=torch.float64).repeat(n_classes, 1, 1)
    codes = torch.from_numpy(np.asarray(codes, dtype=np.int64)).to(mu.device)
    for k in range(n_classes):
        rows, spread = mu[codes == k].double().cpu(), logvar[codes == k].double().cpu().exp()
        if len(rows):
            mean[k] = rows.mean(0)
            centred = rows - mean[k]
            scale[k] = torch.linalg.cholesky(centred.T @ centred / len(rows) + torch.diag(spread.mean(0)))
    return mean.float(), scale.float()
