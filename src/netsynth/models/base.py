"""The one interface of every generator (DESIGN section 5); the list of kinds is in `registry`.

scikit-learn/SDV habits: what defines the model goes to `__init__` (a config dataclass per kind), nothing is
learned there; `fit(train, **FitOptions)` returns self; `sample(counts, seed, **SampleOptions)` returns a
FlowSet; `save(dir)` writes config.json (the config, never the options) and model.safetensors (never a
pickle); `netsynth.load(dir)` restores any kind from config.json.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import ClassVar, Mapping

import numpy as np
from safetensors.numpy import load_file, save_file

from netsynth.errors import NetsynthError
from netsynth.fileio import atomic_path
from netsynth.flows import FlowSet
from netsynth.models import registry
from netsynth.models.options import FitOptions, SampleOptions, resolve_options
from netsynth.timing import EmpiricalServices, EmpiricalTiming, require_timing

CONFIG_FILE, WEIGHTS_FILE, TIMING_FILE = "config.json", "model.safetensors", "timing.safetensors"
TIMING_MODEL = "empirical: per class, packet position and direction pair (netsynth.timing)"
LEARNED_TIMING = "learned: an inter-arrival-time head over the model's hidden state at each packet"
TIMING_OPTION = "timing"  # a fit option of every kind, handled here rather than by each kind's train_options
# options that netsynth 0.1.0 saved in config.json; dropped when such a model is loaded
LEGACY_OPTIONS = {f.name for f in dataclasses.fields(FitOptions)} | {"temperature", "top_k", "sample_batch_size",
                                                                     "sample_steps", "sampler"}


def data_hash(flows: FlowSet) -> str:
    h = hashlib.sha256()
    for a in (flows.size, flows.direction, flows.codes):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update("\0".join(flows.classes).encode())
    return h.hexdigest()[:16]


class Generator:
    kind: ClassVar[str]
    Config: ClassVar[type]
    description: ClassVar[str] = ""
    train_options: ClassVar[frozenset[str]] = frozenset()  # the FitOptions this kind uses
    sample_options: ClassVar[frozenset[str]] = frozenset()  # the SampleOptions this kind uses
    train_defaults: ClassVar[dict] = {}  # this kind's own defaults of FitOptions
    learns_timing: ClassVar[bool] = False  # with timing=True: learns inter-arrival times itself (else: empirical)
    private: ClassVar[bool] = False  # trains with differential privacy when asked (dp_epsilon)

    def __init__(self, **settings):
        names = [f.name for f in dataclasses.fields(self.Config)]
        unknown = sorted(set(settings) - set(names))
        if unknown:
            raise NetsynthError(f"unknown setting(s) {unknown} for {self.kind}; valid: {names}")
        self.config = self.Config(**settings)
        self.classes_: tuple[str, ...] | None = None
        self.timing_: EmpiricalTiming | None = None
        self.services_: EmpiricalServices | None = None
        self.learned_timing_ = False

    # the interface -------------------------------------------------------------------------------------
    def fit(self, train: FlowSet, **options) -> "Generator":
        """Learn from `train`; `options` are FitOptions (epochs, batch_size, lr, seed, device, checkpoint_dir, ...),
        and `timing=True` for every kind: the flows it samples then carry inter-arrival times, and services
        (protocol, server port) where `train` has them (netsynth.timing)."""
        timing = options.pop(TIMING_OPTION, None)
        if options.get("dp_epsilon") is not None and not self.private:  # a privacy request is never ignored
            private = [name for name in registry.names() if registry.kind(name).load().private]
            raise NetsynthError(f"{self.kind} does not train with differential privacy ({', '.join(private)} do)")
        if options.get("epochs") is not None and options.get("min_steps") is None and "min_steps" in self.train_options:
            options = {**options, "min_steps": 0}  # epochs asked for are the cap, not raised by a kind's min_steps
        options = resolve_options(FitOptions, options, self.train_options, self.kind, self.train_defaults)
        self.fit_options_ = {k: v for k, v in dataclasses.asdict(options).items()  # how it was trained, for the record
                             if k in self.train_options and k not in ("checkpoint_dir", "verbose", "progress")}
        if len(train) == 0:
            raise NetsynthError(f"{self.kind}: the training set is empty")
        present = list(train.present_counts())
        if len(present) < 2:
            raise NetsynthError(f"{self.kind}: the training set has {len(present)} class(es) with flows; "
                                "a class-conditioned generator needs at least two")
        train = train.select(present)
        self.classes_ = train.classes
        self.n_packets_ = train.n_packets
        # Under DP only the weights learn from the flows, through DP-SGD: nothing else a model keeps may depend on
        # them. A hash of the flows would let anyone who holds all but one test guesses of the last one.
        private = options.dp_epsilon is not None
        declared = int(train.meta.get("options", {}).get("max_size", 1500))
        if private and train.size.max() > declared:
            raise NetsynthError(f"{self.kind}: lengths above the declared max_size {declared}: DP training takes its "
                                "vocabulary from max_size, not from the flows (ingest with --max-size)")
        self.max_size_ = max(declared, int(train.size.max()))
        self.data_hash_ = None if private else data_hash(train)
        if timing:
            require_timing(train, "the training flows")
            if options.dp_epsilon is not None:
                raise NetsynthError("--timing with --dp-epsilon: the timing models are not trained privately; drop one")
        self.learned_timing_ = bool(timing) and self.learns_timing
        self.timing_ = EmpiricalTiming.fit(train) if timing and not self.learns_timing else None
        self.services_ = EmpiricalServices.fit(train) if timing and train.service is not None else None
        self._fit(train, options)
        return self

    def used_train_options(self, options: dict) -> dict:
        """The `options` this kind uses: for callers that pass the same ones to every kind without a note."""
        return {k: v for k, v in options.items() if k in self.train_options or k == TIMING_OPTION}

    def sample(self, counts: Mapping[str, int] | None = None, *, n_per_class: int | None = None, seed: int = 0,
               **options) -> FlowSet:
        """Synthetic flows: `counts` {class: n}, or `n_per_class` of every class the model knows; `options` are
        SampleOptions (temperature, top_k, batch_size, device, steps, sampler)."""
        self._check_fitted()
        options = resolve_options(SampleOptions, options, self.sample_options, self.kind)
        if (counts is None) == (n_per_class is None):
            raise NetsynthError("give either counts {class: n} or n_per_class")
        if counts is None:
            counts = {c: n_per_class for c in self.classes_}
        unknown = sorted(set(counts) - set(self.classes_))
        if unknown:
            raise NetsynthError(f"class(es) {unknown} were not in the training data of this {self.kind} model; "
                                f"known: {list(self.classes_)}")
        if any(int(n) < 0 for n in counts.values()):
            raise NetsynthError("counts must be non-negative")
        codes = np.concatenate([np.full(int(n), self.classes_.index(c), dtype=np.int32) for c, n in counts.items()]
                               or [np.zeros(0, np.int32)])
        if len(codes) == 0:
            return FlowSet(np.zeros((0, self.n_packets_)), np.zeros((0, self.n_packets_)), codes, self.classes_)
        flows = self._sample(codes, seed, options)
        if self.timing_ is not None:
            flows.iat = self.timing_.draw(flows, seed)
        if self.services_ is not None:
            flows.service = self.services_.draw(codes, seed)
        assert flows.classes == self.classes_ and np.array_equal(flows.codes, codes)
        assert (flows.size[flows.direction != 0] >= 1).all() and flows.size.max() <= self.max_size_
        flows.meta = {"generator": self.kind, "seed": seed}
        return flows

    def save(self, path: str | os.PathLike) -> Path:
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config = {"kind": self.kind, "settings": dataclasses.asdict(self.config), "classes": list(self.classes_),
                  "n_packets": self.n_packets_, "max_size": self.max_size_, "data_hash": self.data_hash_,
                  "netsynth_version": _version(), "differential_privacy": getattr(self, "privacy_", None),
                  "timing": LEARNED_TIMING if self.learned_timing_ else TIMING_MODEL if self.timing_ else None,
                  **self._extra_config()}
        with atomic_path(path / WEIGHTS_FILE) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in self._state().items()}, str(tmp))
        tables = {**({"table": self.timing_.table} if self.timing_ is not None else {}),
                  **({"services": self.services_.table} if self.services_ is not None else {})}
        if tables:
            with atomic_path(path / TIMING_FILE) as tmp:
                save_file(tables, str(tmp))
        with atomic_path(path / CONFIG_FILE) as tmp:
            tmp.write_text(json.dumps(config, indent=2))
        return path

    @classmethod
    def from_config(cls, config: dict, state: dict[str, np.ndarray]) -> "Generator":
        names = {f.name for f in dataclasses.fields(cls.Config)}
        model = cls(**{k: v for k, v in config["settings"].items() if k in names or k not in LEGACY_OPTIONS})
        model.classes_ = tuple(config["classes"])
        model.n_packets_, model.max_size_, model.data_hash_ = config["n_packets"], config["max_size"], config["data_hash"]
        model.privacy_ = config.get("differential_privacy")
        model.learned_timing_ = config.get("timing") == LEARNED_TIMING
        model._restore(config, state)
        return model

    @property
    def n_parameters(self) -> int:
        """Trainable parameters (neural models) or stored numbers (the others)."""
        self._check_fitted()
        return int(sum(np.asarray(v).size for v in self._state().values()))

    @classmethod
    def nominal_parameters(cls, n_classes: int, n_packets: int, max_size: int) -> int | None:
        """Parameters of a default-sized model for a dataset of this shape; None where the model is the data."""
        return None

    def __repr__(self) -> str:
        state = f"{len(self.classes_)} classes" if self.classes_ else "unfitted"
        return f"{type(self).__name__}({state}, {self.config})"

    def _to_flows(self, signed: np.ndarray, codes: np.ndarray) -> FlowSet:
        """Signed lengths [n, N] (0 = padding) of flows of classes `codes` as a FlowSet over the model's classes."""
        signed = np.asarray(signed)
        return FlowSet(np.abs(signed), np.sign(signed), codes, self.classes_)

    # what each kind implements ---------------------------------------------------------------------------
    def _fit(self, train: FlowSet, options: FitOptions) -> None:
        raise NotImplementedError

    def _sample(self, codes: np.ndarray, seed: int, options: SampleOptions) -> FlowSet:
        raise NotImplementedError

    def _state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _restore(self, config: dict, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _extra_config(self) -> dict:
        return {}

    def runtime_notes(self, device) -> list[str]:
        """One line for each slower path this kind would take on `device` (a missing kernel, say)."""
        return []

    def _check_fitted(self):
        if self.classes_ is None:
            raise NetsynthError(f"this {self.kind} model is not fitted: call fit(train) or netsynth.load(dir) first")


def _version() -> str:
    from netsynth import __version__
    return __version__


def create(kind: str, **settings) -> Generator:
    return registry.kind(kind).load()(**settings)


def load(path: str | os.PathLike) -> Generator:
    KINDS = registry.KINDS
    path = Path(path)
    cfg_path = path / CONFIG_FILE
    if path.is_file():
        raise NetsynthError(f"{path}: a file, not a model folder (a model folder is what `netsynth train -o` writes)")
    if not cfg_path.is_file() or not (path / WEIGHTS_FILE).is_file():
        raise NetsynthError(f"{path}: not a netsynth model folder (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        config = json.loads(cfg_path.read_text())
        kind = config["kind"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise NetsynthError(f"{cfg_path}: not a netsynth model config") from None
    if kind not in KINDS:
        raise NetsynthError(f"{cfg_path}: unknown model kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}")
    try:
        state = load_file(str(path / WEIGHTS_FILE))
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise NetsynthError(f"{path / WEIGHTS_FILE}: damaged weights ({e})") from None
    try:
        model = KINDS[kind].load().from_config(config, state)
        tables = load_file(str(path / TIMING_FILE)) if (path / TIMING_FILE).is_file() else {}
    except (KeyError, RuntimeError, ValueError, TypeError, OSError) as e:
        raise NetsynthError(f"{path}: config and weights do not match a {kind} model ({str(e).splitlines()[0]})") from None
    if config.get("timing") == TIMING_MODEL and "table" not in tables:
        raise NetsynthError(f"{path}: config.json names a timing model but {TIMING_FILE} is missing or holds none")
    model.timing_ = EmpiricalTiming(tables["table"]) if "table" in tables else None
    model.services_ = EmpiricalServices(tables["services"]) if "services" in tables else None
    return model
