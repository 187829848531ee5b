"""`netsynth benchmark`: the paper's four research questions on any FlowSet, as resumable steps.

Each step (split, floor, train-on-real, per model: train, generate, fidelity, TSTR; augmentation; efficiency)
stores its result in results.json as soon as it ends, so an interrupted run continues where it stopped.
Models, their checkpoints and the synthetic flows live under cache/ (ignored by git); results.json,
report.md, CSVs and PNGs are small enough to commit.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from netsynth.errors import NetsynthError
from netsynth.fileio import atomic_path
from netsynth.flows import FlowSet
from netsynth.machine import usable_cores
from netsynth.metrics import fidelity, real_floor
from netsynth.models.base import create, data_hash, load
from netsynth.models.registry import names
from netsynth.tasks import efficiency as eff
from netsynth.tasks.augmentation import FlowPool, augmentation_curve, check_fractions
from netsynth.tasks.tstr import FOREST, forest_f1

QUANTIZATIONS = ("int8-weight-only", "int8-dynamic")


@dataclass
class BenchmarkSettings:
    models: list[str] = field(default_factory=lambda: names("generative"))
    fractions: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.15, 0.2])
    seeds: int = 3
    epochs: int | None = None  # None: each model's default
    batch_size: int | None = None  # None: each model's default
    test_size: float = 0.2
    target_cap: int | None = None  # top classes up to min(majority, cap); None = the paper's majority rule
    bin_width: int = 1  # histogram bins of the fidelity metrics, in bytes (1 = exact values)
    efficiency: bool = True
    paper_classes: int = 5
    paper_train_per_class: int = 500
    paper_gen_per_class: int = 100
    quick: bool = False

    @classmethod
    def quick_settings(cls, **overrides) -> "BenchmarkSettings":
        """A fast look: few epochs, one seed, two fractions, a small efficiency protocol."""
        base = dict(seeds=1, epochs=10, fractions=[0.05, 0.2], paper_train_per_class=40, paper_gen_per_class=5,
                    quick=True)
        return cls(**{**base, **overrides})

    def check(self):
        check_fractions(self.fractions)
        unknown = sorted(set(self.models) - set(names("generative")))
        if unknown:
            raise NetsynthError(f"--models: unknown {unknown}; choose from {', '.join(names('generative'))}")
        if self.seeds < 1:
            raise NetsynthError("--seeds must be at least 1")


class Results:
    """results.json: every number the report shows, written whole after each step."""

    def __init__(self, out: Path, fingerprint: str, settings: BenchmarkSettings, resume: bool, source: str):
        self.path = out / "results.json"
        if self.path.exists():
            if not resume:
                raise NetsynthError(f"{out} already holds results; use --resume to continue them or choose another folder")
            self.data = json.loads(self.path.read_text())
            if self.data.get("dataset", {}).get("fingerprint") != fingerprint:
                raise NetsynthError(f"{out} holds results for another dataset ({self.data.get('dataset', {}).get('source')}, "
                                    f"fingerprint {self.data.get('dataset', {}).get('fingerprint')}); "
                                    f"this one is {fingerprint}: choose another folder")
            changed = sorted(k for k, v in dataclasses.asdict(settings).items() if self.data["settings"].get(k) != v)
            if changed:
                raise NetsynthError(f"{out} was run with other settings ({', '.join(changed)} differ); "
                                    "resume with the same options or choose another folder")
        else:
            self.data = {"dataset": {"source": source, "fingerprint": fingerprint}, "steps": {}}
        self.data["settings"] = dataclasses.asdict(settings)
        self.data["environment"] = environment()

    def done(self, step: str) -> bool:
        return step in self.data["steps"]

    def get(self, step: str):
        return self.data["steps"][step]

    def put(self, step: str, value) -> None:
        self.data["steps"][step] = value
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self.data, indent=1, default=_jsonable))


def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    raise TypeError(type(x))


def environment() -> dict:
    import sklearn
    import torch
    import transformers

    from netsynth import __version__
    return {"netsynth": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "scikit-learn": sklearn.__version__,
            "machine": f"{platform.machine()}, {usable_cores()} CPU cores"
                       + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"),
            "forest": FOREST}


def run_benchmark(flows_path: str | Path, out_dir: str | Path, settings: BenchmarkSettings, resume: bool = False,
                  log: Callable[[str], None] = print) -> dict:
    settings.check()
    flows = FlowSet.read(flows_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache"
    cache.mkdir(exist_ok=True)
    (out / ".gitignore").write_text("cache/\n")
    res = Results(out, data_hash(flows), settings, resume, str(flows_path))
    seeds = list(range(settings.seeds))

    def step(name, fn):
        if res.done(name):
            log(f"[done already] {name}")
            return res.get(name)
        log(f"[{time.strftime('%H:%M:%S')}] {name} ...")
        t0 = time.perf_counter()
        value = fn()
        if isinstance(value, dict):
            value.setdefault("seconds", round(time.perf_counter() - t0, 2))
        res.put(name, value)
        return value

    def split():
        train, test = flows.split(test_size=settings.test_size, seed=0)
        train.write(cache / "train.parquet")
        test.write(cache / "test.parquet")
        return {"train": train.class_counts(), "test": test.class_counts(), "grouped": flows.group is not None}

    step("split", split)
    train, test = FlowSet.read(cache / "train.parquet"), FlowSet.read(cache / "test.parquet")
    # a group split can leave a class without test flows: fidelity is measured on the classes that have some
    tested = list(test.present_counts())
    test = test.select(tested)
    majority = max(train.class_counts().values())
    target = min(majority, settings.target_cap) if settings.target_cap else majority
    step("floor", lambda: real_floor(test, seed=0, bin_width=settings.bin_width))
    step("train_on_real", lambda: {"f1": [forest_f1(train, test, seed=s) for s in seeds]})

    pools: dict[str, FlowSet] = {}
    for kind in settings.models:
        model_dir = cache / "models" / kind

        def fit(kind=kind, model_dir=model_dir):
            batch_size = settings.batch_size
            if batch_size is None and settings.quick:  # at least 16 optimizer steps per epoch, even on a small set
                batch_size = min(256, max(16, len(train) // 16))
            model = create(kind)
            options = {"epochs": settings.epochs, "batch_size": batch_size, "checkpoint_dir": model_dir, "verbose": True}
            t0 = time.perf_counter()
            model.fit(train, **{k: v for k, v in options.items() if k in model.train_options})
            took = time.perf_counter() - t0
            model.save(model_dir)
            history = getattr(model, "history_", {})
            return {"train_seconds": took, "parameters": model.n_parameters, "epochs_run": len(history.get("epochs", [])),
                    "settings": dataclasses.asdict(model.config), "history": history}

        step(f"train:{kind}", fit)
        pool_path = cache / "synthetic" / f"{kind}.parquet"

        def generate(kind=kind, model_dir=model_dir, pool_path=pool_path):
            model = load(model_dir)
            t0 = time.perf_counter()
            # enough of every class for augmentation (the target) and for TSTR (the training split's counts)
            pool = model.sample({c: max(target, k) for c, k in train.present_counts().items()}, seed=0)
            took = time.perf_counter() - t0
            pool_path.parent.mkdir(exist_ok=True)
            pool.write(pool_path)
            return {"flows": len(pool), "ms_per_flow": 1000 * took / len(pool)}

        if not pool_path.exists() and res.done(f"generate:{kind}"):
            res.data["steps"].pop(f"generate:{kind}")  # the cache was removed: generate again
        step(f"generate:{kind}", generate)
        pools[kind] = FlowSet.read(pool_path)
        # the synthetic training set of TSTR and fidelity: the training split's class counts, drawn from the pool
        synth = {s: FlowPool(kind, pools[kind]).sample(train.present_counts(), seed=s)
                 for s in seeds}
        step(f"fidelity:{kind}", lambda synth=synth: fidelity(test, synth[0].select(tested), train=train.select(tested),
                                                              bin_width=settings.bin_width))
        step(f"tstr:{kind}", lambda synth=synth: {"f1": [forest_f1(synth[s], test, seed=s) for s in seeds]})

    def augmentation():
        return {"target_per_class": target,
                "records": augmentation_curve(train, test, pools, settings.fractions, seeds, target=target,
                                              on_result=lambda r: log(f"  {r['method']:16s} f={r['fraction']:.2f} "
                                                                      f"seed {r['seed']}: F1 {r['f1']:.3f}"))}

    if target < majority:
        log(f"augmentation tops classes up to {target} flows (capped), not the majority's {majority}")
    step("augmentation", augmentation)
    if settings.efficiency:
        run_efficiency(train, test, tested, settings, step, seeds, cache)
    return res.data


def run_efficiency(train: FlowSet, test: FlowSet, tested: list[str], settings: BenchmarkSettings, step, seeds,
                   cache: Path) -> None:
    """RQ4: the paper's protocol (batch 1) and a practical one (training batch 256, one call for all flows)."""
    subset = eff.paper_subset(train, settings.paper_classes, settings.paper_train_per_class)
    kinds = [k for k in settings.models if k != "markov"] + (["markov"] if "markov" in settings.models else [])
    for kind in kinds:
        def measure(kind=kind):
            row = {}
            for protocol, batch in (("paper", 1), ("practical", 256)):
                model, training = eff.measure_training(kind, subset, batch_size=batch)
                generation = eff.measure_generation(model, settings.paper_gen_per_class, 1 if protocol == "paper" else None)
                row[protocol] = {**training, **generation}
            row["disk_mb"] = eff.disk_mb(model)
            row["parameters"] = model.n_parameters
            return row
        step(f"efficiency:{kind}", measure)
    if "llama" in settings.models:
        full = load(cache / "models" / "llama")
        counts = train.present_counts()
        for mode in ("float32", *QUANTIZATIONS):
            def measure_quantized(mode=mode):
                model = full if mode == "float32" else eff.quantized(full, mode)  # int8 kernels are CPU kernels
                practical = eff.measure_generation(model, settings.paper_gen_per_class, None, device="cpu")
                single = eff.measure_generation(model, max(1, settings.paper_gen_per_class // 10), 1, device="cpu")
                synth = model.sample(counts, seed=0, device="cpu")  # one synthetic set, scored by a forest per seed
                return {"size_mb": eff.module_mb(model.module_), "gen_ms_per_flow_practical": practical["gen_ms_per_flow"],
                        "gen_ms_per_flow_batch1": single["gen_ms_per_flow"],
                        "fidelity": fidelity(test, synth.select(tested), train=train.select(tested),
                                             bin_width=settings.bin_width)["macro"],
                        "tstr_f1": [forest_f1(synth, test, seed=s) for s in seeds]}
            step(f"quantization:{mode}", measure_quantized)
