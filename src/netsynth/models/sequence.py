"""Class-conditioned causal language models over flow tokens (llama, mamba): training loss and sampling.

Sampling is a hand-written batched loop rather than `generate()`: it masks impossible tokens (<PAD>, class tokens,
<UNK>, and <EOS> before the first packet), draws each token by inverse-CDF sampling (`draw`: a uniform number per
flow against the cumulative distribution of blocks of tokens, another within the drawn block; exact like Gumbel-max,
but 2B numbers per step instead of B x vocabulary, which dominates the cost on a CPU), and steps the model with
netsynth's own cache (models/decoding.py), from which a flow leaves as soon as it draws <EOS>; one flow per call
steps a NumPy decoder on a CPU (models/numpy_decoding.py) and replays CUDA graphs on a GPU. The first sampling
run of each model checks the decoder's second step against the model's full forward pass over the prefix, so a
decoder that disagrees with transformers stops the run instead of giving wrong flows.
"""
from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from netsynth import precision, timing
from netsynth.codecs.tokens import EOS, PAD, TokenCodec
from netsynth.errors import NetsynthError
from netsynth.flows import FlowSet
from netsynth.models.decoding import decoder_for, graphed_decoder, weights_key
from netsynth.models.neural import NeuralGenerator
from netsynth.models.numpy_decoding import numpy_decoder_for, one_blas_thread
from netsynth.models.options import SAMPLE_BATCH, SampleOptions
from netsynth.train import resolve_device

IGNORE = -100  # a target without a loss (cross_entropy's ignore_index)
# Under precision auto, a request of fewer flows samples in float32: at a few flows per step the products are too
# small for bf16's matmul rate to show, and its kernels cost more per call. bf16 / float32 sampling rate of llama
# on an AVX512-BF16 EPYC (bf16 matmuls 4.2x float32): 0.50 at 1 flow, 0.69 at 16, 0.93 at 64, 1.24 at 256, 1.45 at
# 1,024 (BENCHMARKS.md); one flow per call on an AMX Xeon: 0.36; on an H200, 0.95 at 1 flow (CUDA graphs), 0.88 at
# 1,024, 1.13 at 32,768.
BF16_MIN_FLOWS = 128
# Flows sampled at once when none is asked for: SAMPLE_BATCH, and more on a GPU, where a step's launches cost as much at
# 32,768 flows as at 1,024. llama on an H200: 55,905 flows/s at 1,024, 739,181 (float32) and 835,697 (bf16) at
# 32,768, 0.89-0.91 of 131,072's rates for a quarter of its memory (each float32 [B, V] tensor of logits or
# probabilities over the 3,002 tokens of a 1,500-byte vocabulary is 0.39 GB at 32,768); mamba 43,267 and 551,759
# (BENCHMARKS.md).
GPU_BATCH = 32768


@dataclass
class TokenSettings:
    vocabulary: str = "full"  # full (the paper's 2 x max_size lengths) | observed (lengths seen in training)
    # Each flow's tokens weighted by N / (C n_c), its class's inverse share of the N training flows of C classes, so
    # that every class weighs the same in the loss, as if each were oversampled to the same count (class-balanced
    # loss, as in long-tailed classification; p(flow | class), what the model learns, is the same target). Off by
    # default until it is measured on every dataset of the results (BENCHMARKS.md, "A class-balanced loss").
    class_balance: bool = False


class CausalLMGenerator(NeuralGenerator):
    sample_options = frozenset({"temperature", "top_k", "batch_size", "device", "precision"})
    learns_timing = True
    # mamba keeps 3e-3: trained to convergence on fgnet-sample it reached a lower validation loss than 1e-3 (2.050
    # against 2.142; TSTR / train on real 0.72 against 0.69; benchmarks/quality.py, before the class at every step);
    # llama sets its own (models/llama.py)
    train_defaults = {"lr": 3e-3, "min_steps": 2000}

    def _prepare(self, train: FlowSet, private: bool) -> None:
        if private and self.config.vocabulary == "observed":
            raise NetsynthError(f"{self.kind}: vocabulary 'observed' lists the lengths seen in training, which DP-SGD's "
                                "guarantee does not cover: keep the full vocabulary with --dp-epsilon")
        self.codec_ = TokenCodec.fit(train, self.max_size_, self.config.vocabulary)
        self._token_weights = None
        if self.config.class_balance:
            if private:
                raise NetsynthError(f"{self.kind}: class_balance weighs flows by their class's count, which DP-SGD's "
                                    "guarantee does not cover: leave it off with --dp-epsilon")
            counts = np.bincount(train.codes, minlength=len(self.classes_)).astype(np.float32)
            weights = np.zeros(self.codec_.vocab_size, dtype=np.float32)  # by class token, read off each flow's first
            weights[self.codec_.class_token(np.arange(len(counts)))] = counts.sum() / (len(counts) * np.maximum(counts, 1))
            self._token_weights = torch.from_numpy(weights)

    def _restore_codec(self, config: dict) -> None:
        self.codec_ = TokenCodec.from_dict(config["codec"])

    def _extra_config(self) -> dict:
        return {"codec": self.codec_.to_dict()}

    def _extend(self, module):
        # Timing (--timing): a linear head reads the hidden state at each packet's own token and gives the
        # distribution of that packet's inter-arrival time over log-spaced bins (netsynth.timing), so a gap
        # depends on the class and on every size so far, this one included; sizes do not depend on gaps (_loss).
        # After training, a bias per class and bin is fitted on the frozen network (_calibrate_gaps).
        if self.learned_timing_:
            module.iat_head = torch.nn.Linear(module.config.hidden_size, timing.N_BINS)
            module.register_buffer("iat_bias", torch.zeros(len(self.classes_), timing.N_BINS))
        return module

    def _fit(self, train: FlowSet, options) -> None:
        super()._fit(train, options)
        if self.learned_timing_:
            self._calibrate_gaps(train, options.seed)

    @torch.inference_mode()
    def _calibrate_gaps(self, train: FlowSet, seed: int, per_class: int = 5000) -> None:
        """Fit the head's bias per class (timing.class_bias) so that, on flows this model samples, each class's gaps
        follow the class's real gap histogram. The head is a linear read-out of states trained for sizes: its
        class marginals miss the real ones, and synthetic sizes the head never saw move them further.
        JSD of gaps against the real-vs-real floor, without the bias and with it: IoT Sentinel 2.59 and 1.19
        times, fgnet-sample 1.48 and 1.13 (BENCHMARKS.md). Fitted on at most `per_class` sampled flows per class,
        at a seed of its own, so that no later sampling run reuses its flows."""
        counts = np.minimum(np.bincount(train.codes, minlength=len(self.classes_)), per_class)
        codes = np.repeat(np.arange(len(self.classes_)), counts)
        own_seed = int(np.random.default_rng([seed, 3]).integers(2**31))
        tokens = sample_tokens(self.module_, self.codec_, codes, seed=own_seed,
                               device=next(self.module_.parameters()).device)
        flows = self.codec_.decode(tokens, codes)
        ids = np.concatenate([self.codec_.class_token(codes)[:, None], tokens], axis=1)
        logits = np.concatenate([self._gap_logits(batch, flows.n_packets).cpu().numpy()
                                 for batch in torch.from_numpy(ids).split(1024)])
        rows, cols = np.nonzero(timing.has_gap(flows.direction))
        bias = timing.class_bias(logits[rows, cols], codes[rows], timing.class_histograms(train))
        self.module_.iat_bias.copy_(torch.from_numpy(bias))

    def _gap_logits(self, ids: torch.Tensor, n_packets: int) -> torch.Tensor:
        """The head's logits [B, n_packets, N_BINS] for token ids [B, >= 1 + n_packets] (class token first), without
        the class bias."""
        module = self.module_
        ids = ids.to(next(module.parameters()).device)
        states = module.base_model(input_ids=ids).last_hidden_state
        return module.iat_head(states[:, 1:1 + n_packets]).float()

    def _tensors(self, train: FlowSet):
        ids = torch.from_numpy(self.codec_.encode(train))
        if not self.learned_timing_:
            return (ids,)
        target = timing.bins(train.iat)
        target[~timing.has_gap(train.direction)] = IGNORE
        return ids, torch.from_numpy(target)

    def _loss(self, module, ids, iat_bins=None):
        # The output layer runs only where there is a token to predict: most positions of short flows are
        # <PAD>, and the vocabulary-wide projection is the largest matmul (1.5x faster training on IoT Sentinel).
        states = module.base_model(input_ids=ids).last_hidden_state
        hidden = states[:, :-1]
        target = ids[:, 1:]
        keep = target != PAD
        logits = module.get_output_embeddings()(hidden[keep]).float()
        if self._token_weights is None:
            loss = F.cross_entropy(logits, target[keep])
        else:
            weight = self._token_weights.to(ids.device)[ids[:, 0]][:, None].expand_as(target)[keep]
            loss = (F.cross_entropy(logits, target[keep], reduction="none") * weight).sum() / weight.sum()
        if iat_bins is None:
            return loss
        # The gap head learns from the network's states without changing them, and the loss it adds has gradients
        # but no value: the network and early stopping see the size loss alone, so --timing cannot cut the size
        # model's training short (a joint loss did on fgnet-sample: BENCHMARKS.md).
        at_packets = states[:, 1:1 + iat_bins.shape[1]].detach()  # position k holds packet k (position 0: the class)
        known = iat_bins != IGNORE
        gaps = F.cross_entropy(module.iat_head(at_packets[known]).float(), iat_bins[known])
        return loss + (gaps - gaps.detach())

    @torch.inference_mode()
    def log_likelihood(self, flows: FlowSet, batch_size: int = 1024) -> np.ndarray:
        """log p(flow | class) in nats per flow: the sum over its tokens, <EOS> included (no sampling masks)."""
        self._check_fitted()
        present = flows.select(list(flows.present_counts()))  # classes without flows may be unknown to the model
        ids = torch.from_numpy(self.codec_.encode(present.with_classes(self.classes_)))
        device = next(self.module_.parameters()).device
        out = []
        for batch in ids.split(batch_size):
            batch = batch.to(device)
            logp = self.module_(input_ids=batch).logits[:, :-1].float().log_softmax(-1)
            target = batch[:, 1:]
            out.append((logp.gather(-1, target[..., None])[..., 0] * (target != PAD)).sum(1).cpu())
        return torch.cat(out).numpy()

    def _private_loss(self, module, ids):
        # DP-SGD needs each flow's own loss [B] (the guarantee assumes no flow's gradient depends on another's) and one
        # row per flow in every layer: every position goes through the output layer (not only the real tokens, as
        # `_loss` does), and each flow's loss is the mean over its own tokens
        logits = module(input_ids=ids).logits[:, :-1].float()
        target = ids[:, 1:]
        per_token = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=PAD, reduction="none")
        return per_token.sum(1) / (target != PAD).sum(1).clamp(min=1)

    def sampling_precision(self, choice: str, device: torch.device, n_flows: int) -> str:
        """fp32 or bf16 for sampling `n_flows` flows at a time: `choice` resolved, auto in float32 below
        BF16_MIN_FLOWS."""
        if choice == "auto" and n_flows < BF16_MIN_FLOWS:
            return "fp32"
        return self.resolve_precision(choice, device)

    def _sample(self, codes: np.ndarray, seed: int, options: SampleOptions) -> FlowSet:
        device = resolve_device(options.device)
        batch = options.batch_size or (GPU_BATCH if device.type == "cuda" else SAMPLE_BATCH)
        used = self.sampling_precision(options.precision, device, min(len(codes), batch))
        with precision.autocast(used, device):
            tokens = sample_tokens(self.module_, self.codec_, codes, seed=seed, temperature=options.temperature,
                                   top_k=options.top_k, batch_size=batch, device=device)
            flows = self.codec_.decode(tokens, codes)
            if self.learned_timing_:
                gaps = timing.has_gap(flows.direction)
                flows.iat = self._draw_iat(tokens, codes, gaps, seed, batch, device)
        return flows

    @torch.inference_mode()
    def _draw_iat(self, tokens: np.ndarray, codes: np.ndarray, gaps: np.ndarray, seed: int, batch_size: int,
                  device) -> np.ndarray:
        """Gaps [n, N] in seconds for sampled `tokens` [n, N], at the packets where `gaps` [n, N] (timing.has_gap): one
        full pass over each flow's tokens (exactly the prefixes the head saw in training), then a bin per packet and
        a value inside it (netsynth.timing)."""
        rng = np.random.default_rng([seed, 1])
        self.module_.to(device)
        iat = np.zeros(tokens.shape, dtype=np.float32)
        for start in range(0, len(codes), batch_size):
            rows = slice(start, start + batch_size)
            ids = np.concatenate([self.codec_.class_token(codes[rows])[:, None], tokens[rows]], axis=1)
            bias = self.module_.iat_bias[torch.from_numpy(codes[rows]).to(device)][:, None]
            probs = (self._gap_logits(torch.from_numpy(ids), tokens.shape[1]) + bias).softmax(-1).cpu().numpy()
            mask = gaps[rows]
            block = iat[rows]
            block[mask] = timing.draw_seconds(probs[mask], rng)
        return iat


_CHECKED = weakref.WeakKeyDictionary()  # model -> the decoder classes already checked against it


def decoder_checked(model, decoder) -> bool:
    """Whether check_decoder has passed `decoder`'s class for `model`."""
    return type(decoder) in _CHECKED.get(model, ())


def check_decoder(model, decoder, prefix: torch.Tensor, logits: torch.Tensor) -> None:
    """Stop if the decoder's logits after `prefix` [B, t] differ from one forward pass of the model over it.
    Once per model and decoder class: a check costs a full forward pass, as much as sampling one flow.

    Float rounding passes; so does the noise of dynamic int8 quantization (activation scales depend on the
    tensor, so the step and the full pass round differently), which is small beside what the context changes.
    A decoder that loses the context gives the logits of the last token alone, which fails."""
    if decoder_checked(model, decoder):
        return
    full = model(input_ids=prefix, use_cache=False).logits[:, -1].float()
    error = (full - logits).abs().max().item()
    if error > 1e-3 * max(1.0, full.abs().max().item()):
        last_only = model(input_ids=prefix[:, -1:], use_cache=False).logits[:, -1].float()
        if error > 0.1 * (full - last_only).abs().max().item():
            raise NetsynthError(f"transformers {_transformers_version()}: {type(decoder).__name__} gives other logits "
                                f"than {type(model).__name__}'s forward pass (max difference {error:.3g}); refusing to "
                                "generate wrong flows. Install a transformers version that netsynth supports (pyproject.toml)")
    _CHECKED.setdefault(model, set()).add(type(decoder))


def token_bias(codec: TokenCodec, step: int, device) -> torch.Tensor:
    """[V] 0 for the tokens that may come at `step` (0 = the first packet), -inf for the others (DESIGN section 4):
    never <PAD>, <UNK> or a class token; <EOS> only after the first packet."""
    bias = torch.full((codec.vocab_size,), -torch.inf, device=device)
    bias[codec.first_length:] = 0.0
    if step > 0:
        bias[EOS] = 0.0
    return bias


def next_token_distribution(logits: torch.Tensor, bias: torch.Tensor, temperature: float, top_k: int) -> torch.Tensor:
    """The distribution [B, V] the sampler draws from: logits [B, V] masked by `bias` [V], divided by the
    temperature, cut to the `top_k` most likely tokens (0 = no cut; ties at the k-th value are kept)."""
    logits = (logits / temperature if temperature != 1 else logits) + bias  # a pass over [B, V] saved at T = 1
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.shape[1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    return torch.softmax(logits, dim=-1)


def numpy_next_token_distribution(logits: np.ndarray, bias: np.ndarray, temperature: float, top_k: int) -> np.ndarray:
    """next_token_distribution of one flow's float32 logits [V] in NumPy, for the one-flow loop (_sample_in_numpy);
    tested against it."""
    logits = (logits / temperature if temperature != 1 else logits) + bias
    if top_k:
        k = min(top_k, len(logits))
        logits[logits < np.partition(logits, len(logits) - k)[len(logits) - k]] = -np.inf
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def draw(probs: torch.Tensor, gen: torch.Generator, block: int = 64) -> torch.Tensor:
    """One token [B, 1] per row of `probs` [B, V] (normalized or not), drawn in two levels: a block of `block`
    consecutive tokens (the last may be shorter) with its share of the row's total, then a token of the block with
    its share of the block's; by the chain rule, exactly the row's distribution. At batch 600 and 3,000 tokens,
    torch's cumulative sum over whole rows took 2.7x the time of the block sums and two short cumulative sums
    (BENCHMARKS.md), and 7 % of llama's sampling. Below 64 rows one level is faster (its fewer calls)."""
    size = probs.shape[1]
    if size <= block or len(probs) < 64:
        return _inverse_cdf(probs, gen)
    whole = size // block * block
    sums = probs[:, :whole].unflatten(1, (-1, block)).sum(-1)  # [B, blocks]
    if whole < size:
        sums = torch.cat([sums, probs[:, whole:].sum(-1, keepdim=True)], dim=1)
    first = _inverse_cdf(sums, gen) * block  # [B, 1]: the drawn block's first token
    index = first + torch.arange(block, device=probs.device)
    inside = probs.gather(1, index.clamp(max=size - 1))
    if whole < size:
        inside.masked_fill_(index >= size, 0)
    return first + _inverse_cdf(inside, gen)


def _inverse_cdf(probs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One index [B, 1] per row of `probs` [B, n]: the first whose cumulative probability exceeds u ~ U[0, total).
    Strictly exceeds: an entry of probability zero is never drawn, even at u = 0. One uniform number per row, where
    Gumbel-max draws one per entry (on the CPU, generating B x V numbers was half of a Gumbel-max sampler's time)."""
    cum = probs.cumsum(dim=-1)
    u = torch.rand((len(probs), 1), generator=gen, device=probs.device) * cum[:, -1:]
    return torch.searchsorted(cum, u, right=True).clamp_(max=probs.shape[1] - 1)


@torch.inference_mode()
def sample_tokens(model, codec: TokenCodec, codes: np.ndarray, seed: int, temperature: float = 1.0, top_k: int = 0,
                  batch_size: int = SAMPLE_BATCH, device: torch.device | str = "cpu", on_step=None,
                  fast_one_flow: bool = True) -> np.ndarray:
    """Token ids [n, N] after the class prompt; a flow's tokens after its <EOS> are <EOS>.

    A flow leaves the batch when it draws <EOS>. on_step(start, step, rows, probs), when given, sees every
    distribution drawn from: probs [b, V] for the flows start + rows [b] of the batch that are still running.
    One flow at a time replays the decoder's steps from CUDA graphs on CUDA (decoding.GraphedDecoder) and runs in
    NumPy on the CPU (_sample_in_numpy) unless `fast_one_flow` is False: then the torch decoder runs eagerly, the
    reference both are tested against.
    """
    if temperature <= 0:
        raise NetsynthError("temperature must be positive")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:  # as the parameters name it, or every call moves the model
        device = torch.device("cuda", torch.cuda.current_device())
    # quantized weights cannot be moved in place; the embedding is never quantized, and reading its device skips
    # the walk over every module that next(model.parameters()) starts (a cost at one flow per call)
    if model.get_input_embeddings().weight.device != device:
        model = model.to(device)
    if model.training:  # eval() walks every submodule: a cost that sampling one flow per call would pay each time
        model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    weights = weights_key(model)
    opened, first_logits, biases = _opening(model, codec, device, weights)
    batch = min(batch_size, len(codes))
    if fast_one_flow and batch == 1 and device.type == "cpu":
        decoder = numpy_decoder_for(model, codec.n_packets, weights)  # None where it does not apply
        if decoder is not None:
            return _sample_in_numpy(model, decoder, codec, codes, opened, first_logits, biases, gen, temperature,
                                    top_k, on_step)
    if fast_one_flow and batch == 1 and device.type == "cuda":
        decoder = graphed_decoder(model, codec.n_packets, opened, weights)
        turn = decoder.lock  # shared by the threads that sample this model
    else:
        decoder, turn = decoder_for(model, batch, codec.n_packets, weights), contextlib.nullcontext()
    with turn:
        return _sample_in_batches(model, decoder, codec, codes, opened, first_logits, biases, gen, temperature,
                                  top_k, batch_size, device, on_step)


def _sample_in_batches(model, decoder, codec: TokenCodec, codes: np.ndarray, opened: tuple,
                       first_logits: torch.Tensor, biases: tuple, gen: torch.Generator, temperature: float, top_k: int,
                       batch_size: int, device: torch.device, on_step) -> np.ndarray:
    """sample_tokens' loop over batches of flows with a torch decoder (or its CUDA graphs at one flow)."""
    out = np.empty((len(codes), codec.n_packets), dtype=np.int64)
    for start in range(0, len(codes), batch_size):
        chunk = np.asarray(codes[start:start + batch_size], dtype=np.int64)
        classes, prompt = torch.from_numpy(chunk).to(device), torch.from_numpy(codec.class_token(chunk)).to(device)
        decoder.restore(opened, classes)
        tokens = torch.full((len(prompt), codec.n_packets), EOS, device=device)
        rows, logits = torch.arange(len(prompt), device=device), first_logits[classes]
        for step in range(codec.n_packets):
            if start == 0 and step == 1:  # nothing has ended yet: <EOS> cannot be a first packet
                check_decoder(model, decoder, torch.stack([prompt, tokens[:, 0]], dim=1), logits)
            probs = next_token_distribution(logits, biases[step > 0], temperature, top_k)
            if on_step is not None:
                on_step(start, step, rows, probs)
            ids = draw(probs, gen)[:, 0]
            tokens[rows, step] = ids
            running = ids != EOS
            if not running.all():
                if not running.any():
                    break
                kept = running.nonzero()[:, 0]
                rows, ids = rows[kept], ids[kept]
                decoder.keep(kept)
            if step + 1 < codec.n_packets:
                logits = decoder.step(ids)
        out[start:start + len(prompt)] = tokens.cpu().numpy()
    return out


def _sample_in_numpy(model, decoder, codec: TokenCodec, codes: np.ndarray, opened: tuple, first_logits: torch.Tensor,
                     biases: tuple, gen: torch.Generator, temperature: float, top_k: int, on_step) -> np.ndarray:
    """sample_tokens for one flow at a time on the CPU: a NumPy decoder (numpy_decoding), and the distribution and
    the draw in NumPy too, with NumPy's BLAS on one thread (numpy_decoding.one_blas_thread). At one flow, each torch
    call on the CPU costs several microseconds whatever its size: the batched loop's torch calls between two steps
    (the distribution, the draw, the bookkeeping of finished flows) took about 30 us a draw under a line profiler,
    beside llama's steps of 170 us; this loop, with a cheaper weights_key and BLAS limit, made one flow per call 1.2x
    (llama) and 1.3x (mamba) faster (BENCHMARKS.md, "The one-flow loop in NumPy"). The uniform numbers come from
    `gen` as in the batched loop, so both draw the same flows but where float rounding moves a boundary."""
    first, biases = first_logits.numpy(), [bias.numpy() for bias in biases]
    out = np.full((len(codes), codec.n_packets), EOS, dtype=np.int64)
    check = not decoder_checked(model, decoder)
    with one_blas_thread():
        for i, code in enumerate(np.asarray(codes).tolist()):
            decoder.restore(opened, code)
            logits = first[code]
            for step in range(codec.n_packets):
                probs = numpy_next_token_distribution(logits, biases[step > 0], temperature, top_k)
                if on_step is not None:
                    on_step(i, step, torch.zeros(1, dtype=torch.long), torch.from_numpy(probs)[None])
                out[i, step] = token = _draw_in_numpy(probs, gen)
                if token == EOS or step + 1 == codec.n_packets:
                    break
                logits = decoder.step(token)
                if check:
                    prefix = torch.tensor([[int(codec.class_token(np.array([code]))[0]), token]])
                    check_decoder(model, decoder, prefix, torch.from_numpy(logits)[None])
                    check = False
    return out


def _draw_in_numpy(probs: np.ndarray, gen: torch.Generator) -> int:
    """_inverse_cdf of one row [V], with the same uniform number from `gen`. The cumulative sum stays torch's: NumPy's
    took 10 us over 3,000 tokens, torch's 4, and torch's accumulates in float64, so the sums are the same too."""
    cum = torch.from_numpy(probs).cumsum(0).numpy()
    u = np.float32(torch.rand(1, generator=gen).item()) * cum[-1]
    return min(int(np.searchsorted(cum, u, side="right")), len(cum) - 1)


_OPENINGS = weakref.WeakKeyDictionary()  # model -> (what the opening read, then what it returns)


def _opening(model, codec: TokenCodec, device, weights: tuple) -> tuple:
    """(snapshot, logits [C, V], biases): the decoder's state and logits after its first step over every class token,
    and token_bias of the first packet and of every later one.
    That step sees the class token alone, so it is the same for every flow of a class: run once per model (while
    its `weights` (weights_key), the codec and the autocast setting stay) and restored into each batch, it saves each
    flow a step (a fifth of the steps of IoT Sentinel's flows of 3.8 packets on average)."""
    device = torch.device(device)
    autocast = torch.is_autocast_enabled(device.type) and torch.get_autocast_dtype(device.type)
    key = (weights, codec, device, autocast)
    if model not in _OPENINGS or _OPENINGS[model][0] != key:
        prompts = torch.from_numpy(codec.class_token(np.arange(len(codec.classes)))).to(device)
        decoder = decoder_for(model, len(prompts), codec.n_packets, weights)
        logits = decoder.step(prompts)
        biases = token_bias(codec, 0, device), token_bias(codec, 1, device)
        _OPENINGS[model] = key, decoder.snapshot(), logits, biases
    return _OPENINGS[model][1:]


def sampler_reference_error(model, codec: TokenCodec, codes: np.ndarray, seed: int = 0, temperature: float = 1.0,
                            top_k: int = 0, batch_size: int = 1024) -> float:
    """The largest difference between a distribution the sampler draws from and the one that a full forward
    pass over the same prefix gives (the slow reference), over every step of sampling `codes`."""
    seen = []
    device = next(model.parameters()).device  # where the model is: sample_tokens would move it to the CPU
    tokens = sample_tokens(model, codec, codes, seed, temperature, top_k, batch_size, device,
                           on_step=lambda start, step, rows, probs: seen.append((start + rows.cpu().numpy(), step, probs)))
    worst = 0.0
    with torch.inference_mode():
        for flows, step, probs in seen:
            prompt = torch.from_numpy(codec.class_token(codes[flows]))[:, None]
            prefix = torch.cat([prompt, torch.from_numpy(tokens[flows, :step])], dim=1).to(device)
            logits = model(input_ids=prefix, use_cache=False).logits[:, -1].float()
            expected = next_token_distribution(logits, token_bias(codec, step, device), temperature, top_k)
            worst = max(worst, float((probs - expected).abs().max()))
    return worst


def _transformers_version() -> str:
    import transformers
    return transformers.__version__
