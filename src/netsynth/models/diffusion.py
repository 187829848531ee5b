"""diffusion (NetDiffus-NR): a class-conditioned denoising diffusion model on GASF images of flows.

Sivaroopan et al., "NetDiffus: Network Traffic Generation by Diffusion Models through Time-Series Imaging",
2023; the "NR" variant maps generated images back to sequences by the least-squares inverse over the whole
image (codecs/gasf.py). The denoiser is diffusers' UNet2DModel with a class embedding added to the time
embedding; training uses the DDPM noise schedule, sampling the fast deterministic DPM-Solver++ with a
configurable number of steps (DDIM as an alternative). With guidance_scale != 1 the class embedding is dropped for a fraction of the
training examples and classifier-free guidance mixes the two predictions when sampling.

The UNet predicts v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho, "Progressive Distillation for
Fast Sampling of Diffusion Models", 2022, section 4), not the noise eps of Ho et al. and NetDiffus: with the
cosine schedule abar_t falls to about 0 at t = T, where a prediction of eps says nothing about x_0, and small
errors in eps near t = 0 become large errors in sizes. Measured on TII-SSRC (BENCHMARKS.md): TSTR / train on
real 0.72 against 0.47, class fidelity 57 against 31 %, same steps and seed.

The paper's post-generation refinement is carried through to exact values: after the least-squares inverse,
each signed length moves to the nearest one seen in training in the flow's class (`snap_to_values`). Per
class, not over all classes: the exact sizes are what tells one application from another (a device's
firmware sends the same message sizes), and a value snapped to another class's size would blur that; the
per-class sets are part of the saved model, as a Markov chain's support is.

Glossary (code name: the paper's term and Ho et al.'s symbols):
    base_channels     hidden 32: channels of the first UNet block (then 64, 64)
    attention_heads   4 heads in the attention blocks
    train_timesteps   T, the length of the DDPM forward (noising) process; images x_0 [n, 1, S, S], S = N rounded up to 4
    prediction        what the denoiser predicts from (x_t, t, class): v (default), the noise eps, or x_0
    guidance_scale    w of classifier-free guidance: pred = pred_uncond + w (pred_class - pred_uncond)
    gasf              TrafficMatrix2Image (GASF) and Image2TrafficMatrix (codecs/gasf.py)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from netsynth.codecs import gasf
from netsynth.errors import NetsynthError
from netsynth.flows import FlowSet
from netsynth.models.neural import NeuralGenerator
from netsynth.models.options import SAMPLE_BATCH, SampleOptions
from netsynth.train import resolve_device


@dataclass
class DiffusionConfig:
    base_channels: int = 32
    layers_per_block: int = 1
    attention_heads: int = 4
    train_timesteps: int = 1000
    guidance_scale: float = 1.0  # 1 = plain conditional sampling; > 1 = classifier-free guidance
    class_dropout: float = 0.1  # used only when guidance_scale != 1
    size_scale: str = "linear"  # linear (NetDiffus) | log: sizes into pixel values (codecs/gasf.py)
    prediction: str = "v_prediction"  # what the UNet predicts: v_prediction | epsilon | sample (x_0)


PREDICTIONS = ("v_prediction", "epsilon", "sample")  # diffusers' names for v, epsilon and x_0


def _side(n_packets: int) -> int:
    """Image side: N rounded up to a multiple of 4 (two 2x down-samplings in the UNet)."""
    return -(-n_packets // 4) * 4


class Diffusion(NeuralGenerator):
    kind = "diffusion"
    Config = DiffusionConfig
    description = "NetDiffus-NR: class-conditioned UNet2D diffusion on GASF images, DPM-Solver++ sampling"
    sample_options = frozenset({"batch_size", "device", "steps", "sampler"})
    private = False  # diffusers' UNet has layers (GroupNorm over a batch of images, attention) left out of DP here
    train_defaults = {"epochs": 60, "lr": 2e-3, "min_steps": 6000}  # diffusion needs optimizer steps (issue 9)

    def _build(self):
        from diffusers import UNet2DModel

        c = self.config
        ch = c.base_channels
        return UNet2DModel(sample_size=_side(self.n_packets_), in_channels=1, out_channels=1,
                           block_out_channels=(ch, 2 * ch, 2 * ch), layers_per_block=c.layers_per_block,
                           down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                           up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                           attention_head_dim=2 * ch // c.attention_heads, norm_num_groups=8,
                           num_class_embeds=len(self.classes_) + 1)  # the last class is "no class" (guidance)

    def _scheduler(self):
        from diffusers import DDPMScheduler

        return DDPMScheduler(num_train_timesteps=self.config.train_timesteps, beta_schedule="squaredcos_cap_v2",
                             prediction_type=self.config.prediction)

    def _images(self, signed: np.ndarray) -> torch.Tensor:
        img = gasf.to_gasf(signed, self.max_size_, self._log_scale())
        side = _side(self.n_packets_)
        pad = side - self.n_packets_
        return F.pad(torch.from_numpy(img)[:, None], (0, pad, 0, pad), value=-1.0)

    def _tensors(self, train: FlowSet):
        return self._images(train.signed), torch.from_numpy(train.codes.astype(np.int64))

    def _loss(self, module, images, codes):
        if not hasattr(self, "_train_scheduler"):
            self._train_scheduler = self._scheduler()
        sched = self._train_scheduler
        if self.config.guidance_scale != 1.0:
            drop = torch.rand(codes.shape, device=codes.device) < self.config.class_dropout
            codes = torch.where(drop, torch.full_like(codes, len(self.classes_)), codes)
        noise = torch.randn_like(images)
        t = torch.randint(0, sched.config.num_train_timesteps, (len(images),), device=images.device)
        noisy = sched.add_noise(images, noise, t)
        return F.mse_loss(module(noisy, t, class_labels=codes).sample, self._target(sched, images, noise, t))

    def _target(self, sched, images: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the UNet learns to predict from the noised images [B, 1, S, S] at timesteps t [B]."""
        if self.config.prediction == "epsilon":
            return noise
        return images if self.config.prediction == "sample" else sched.get_velocity(images, noise, t)

    @torch.inference_mode()
    def _sample(self, codes: np.ndarray, seed: int, options: SampleOptions) -> FlowSet:
        from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

        samplers = {"dpm-solver++": DPMSolverMultistepScheduler, "ddim": DDIMScheduler}
        if options.sampler not in samplers:
            raise NetsynthError(f"sampler must be one of {sorted(samplers)}, got {options.sampler!r}")
        device = resolve_device(options.device)
        module = self.module_.to(device).eval()
        sched = samplers[options.sampler].from_config(self._scheduler().config)
        gen = torch.Generator(device=device).manual_seed(seed)
        side, N, w = _side(self.n_packets_), self.n_packets_, self.config.guidance_scale
        out = np.zeros((len(codes), N), dtype=np.int64)
        batch = options.batch_size or SAMPLE_BATCH
        for start in range(0, len(codes), batch):
            c = torch.from_numpy(codes[start:start + batch].astype(np.int64)).to(device)
            x = torch.randn((len(c), 1, side, side), generator=gen, device=device)
            sched.set_timesteps(options.steps)
            for t in sched.timesteps:
                pred = module(x, t, class_labels=c).sample
                if w != 1.0:
                    uncond = module(x, t, class_labels=torch.full_like(c, len(self.classes_))).sample
                    pred = uncond + w * (pred - uncond)
                x = sched.step(pred, t, x).prev_sample
            img = x[:, 0, :N, :N].clamp(-1, 1).cpu().numpy()
            img = (img + img.transpose(0, 2, 1)) / 2  # a GASF is symmetric
            out[start:start + len(c)] = gasf.from_gasf(img, self.max_size_, self._log_scale())
        if self.values_ is not None:
            out = snap_to_values(out, codes, self.values_, self.offsets_)
        return self._to_flows(out, codes)

    def _log_scale(self) -> bool:
        if self.config.size_scale not in ("linear", "log"):
            raise NetsynthError(f"size_scale must be linear or log, got {self.config.size_scale!r}")
        return self.config.size_scale == "log"

    def _prepare(self, train: FlowSet, private: bool) -> None:
        self._log_scale()
        if self.config.prediction not in PREDICTIONS:
            raise NetsynthError(f"prediction must be one of {', '.join(PREDICTIONS)}, got {self.config.prediction!r}")
        self.values_, self.offsets_ = values_by_class(train)

    def _state(self) -> dict[str, np.ndarray]:
        return {**super()._state(), "refine.values": self.values_, "refine.offsets": self.offsets_}

    def _restore(self, config: dict, state: dict[str, np.ndarray]) -> None:
        state = dict(state)  # models saved by netsynth 0.1.0 have no refinement arrays: they sample without it
        self.values_, self.offsets_ = state.pop("refine.values", None), state.pop("refine.offsets", None)
        if "prediction" not in config["settings"]:  # saved before v-prediction became the default
            self.config = dataclasses.replace(self.config, prediction="epsilon")
        super()._restore(config, state)


def values_by_class(flows: FlowSet) -> tuple[np.ndarray, np.ndarray]:
    """The signed lengths seen in each class, sorted, as one array [sum of V_c] and class offsets [C + 1]."""
    signed = flows.signed
    per_class = [np.unique(signed[(flows.codes == c)[:, None] & (signed != 0)]) for c in range(len(flows.classes))]
    return (np.concatenate(per_class).astype(np.int64),
            np.cumsum([0] + [len(v) for v in per_class]).astype(np.int64))


def snap_to_values(signed: np.ndarray, codes: np.ndarray, values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Each non-zero signed length [n, N] moved to the nearest one seen in its flow's class (ties: the smaller)."""
    out = signed.copy()
    for c in np.unique(codes):
        known = values[offsets[c]:offsets[c + 1]]
        rows = codes == c
        x = signed[rows]
        right = np.clip(np.searchsorted(known, x), 1, len(known) - 1) if len(known) > 1 else np.zeros_like(x)
        left = np.maximum(right - 1, 0)
        nearest = np.where(np.abs(known[left] - x) <= np.abs(known[right] - x), known[left], known[right])
        out[rows] = np.where(x != 0, nearest, 0)
    return out
