"""TrafficMatrix2Token and back (DESIGN section 4).

Token ids: 0 <PAD>, 1 <EOS>, 2 <UNK> (only in the observed vocabulary), then one <CLASS_k> per class, then
one token per signed non-zero payload length. The full vocabulary (the paper's) has 2 * max_size length
tokens, ordered -max_size..-1, 1..max_size; the observed vocabulary has only the lengths seen in training.
A sequence is `<CLASS_k> t1 .. t_len <EOS>`, right-padded with <PAD> to N + 2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netsynth.errors import NetsynthError
from netsynth.flows import FlowSet

PAD, EOS, UNK = 0, 1, 2
SPECIALS = 3


@dataclass(frozen=True)
class TokenCodec:
    classes: tuple[str, ...]
    n_packets: int
    max_size: int = 1500
    observed: tuple[int, ...] | None = None  # signed lengths of the observed vocabulary, sorted; None = full

    @classmethod
    def fit(cls, flows: FlowSet, max_size: int, vocabulary: str = "full") -> "TokenCodec":
        if vocabulary not in ("full", "observed"):
            raise NetsynthError(f"vocabulary must be 'full' or 'observed', got {vocabulary!r}")
        if (flows.size[flows.direction != 0] == 0).any():
            raise NetsynthError("token models need flows without zero-payload packets (ingest without --keep-empty)")
        observed = None
        if vocabulary == "observed":
            observed = tuple(int(v) for v in np.unique(flows.signed[flows.direction != 0]))
        return cls(tuple(flows.classes), flows.n_packets, max_size, observed)

    @property
    def first_length(self) -> int:
        return SPECIALS + len(self.classes)

    @property
    def n_lengths(self) -> int:
        return 2 * self.max_size if self.observed is None else len(self.observed)

    @property
    def vocab_size(self) -> int:
        return self.first_length + self.n_lengths

    @property
    def seq_len(self) -> int:
        return self.n_packets + 2

    def class_token(self, codes) -> np.ndarray:
        return SPECIALS + np.asarray(codes)

    def length_tokens(self, signed: np.ndarray) -> np.ndarray:
        signed = np.asarray(signed, dtype=np.int64)
        if self.observed is None:
            if (np.abs(signed) > self.max_size).any() or (signed == 0).any():
                raise NetsynthError(f"signed lengths must be non-zero and within +-{self.max_size}")
            idx = np.where(signed < 0, signed + self.max_size, signed + self.max_size - 1)
            return self.first_length + idx
        table = np.asarray(self.observed)
        pos = np.clip(np.searchsorted(table, signed), 0, len(table) - 1)
        return np.where(table[pos] == signed, self.first_length + pos, UNK)

    def token_lengths(self, tokens: np.ndarray) -> np.ndarray:
        """Signed lengths of length tokens (callers pass only length tokens)."""
        idx = np.asarray(tokens, dtype=np.int64) - self.first_length
        if self.observed is None:
            return np.where(idx < self.max_size, idx - self.max_size, idx - self.max_size + 1)
        return np.asarray(self.observed)[idx]

    def encode(self, flows: FlowSet) -> np.ndarray:
        """int64 [n, N + 2] training sequences."""
        n, N = len(flows), flows.n_packets
        if N != self.n_packets or tuple(flows.classes) != self.classes:
            raise NetsynthError("flows do not match the codec (packets per flow or class list differ)")
        out = np.full((n, N + 2), PAD, dtype=np.int64)
        out[:, 0] = self.class_token(flows.codes)
        real = flows.direction != 0
        signed = flows.signed
        body = np.full((n, N), PAD, dtype=np.int64)
        body[real] = self.length_tokens(signed[real])
        out[:, 1:N + 1] = body
        out[np.arange(n), 1 + flows.length] = EOS
        return out

    def decode(self, tokens: np.ndarray, codes: np.ndarray) -> FlowSet:
        """Sampled sequences [n, >= N] of length tokens (without the class token), cut at the first
        non-length token or after N packets; at least the first token must be a length token."""
        tokens = np.asarray(tokens)[:, : self.n_packets]
        is_length = tokens >= self.first_length
        # a flow ends at its first non-length token (EOS)
        alive = np.cumprod(is_length, axis=1).astype(bool)
        if not alive[:, 0].all():
            raise NetsynthError("a sampled flow has no packet")
        signed = np.zeros(tokens.shape, dtype=np.int64)
        signed[alive] = self.token_lengths(tokens[alive])
        pad = np.zeros((len(tokens), self.n_packets - tokens.shape[1]), dtype=np.int64)
        signed = np.hstack([signed, pad])
        return FlowSet(np.abs(signed), np.sign(signed), codes, self.classes)

    def to_dict(self) -> dict:
        return {"classes": list(self.classes), "n_packets": self.n_packets, "max_size": self.max_size,
                "observed": None if self.observed is None else list(self.observed)}

    @classmethod
    def from_dict(cls, d: dict) -> "TokenCodec":
        return cls(tuple(d["classes"]), d["n_packets"], d["max_size"],
                   None if d["observed"] is None else tuple(d["observed"]))
