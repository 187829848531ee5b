"""`netsynth benchmark`: the paper's experiment (its four research questions) on any FlowSet, as a pipeline.

The steps, in order, each a top-level function of explicit inputs that returns what results.json keeps:
split, floor, train-on-real, then per generative model train, generate, fidelity and TSTR, then augmentation,
efficiency and quantization. `Results.step` stores each result as soon as it returns, so an interrupted run
continues where it stopped (--resume). Models, their checkpoints and the synthetic flows live under cache/
(ignored by git); results.json, report.md, CSVs and PNGs are small enough to commit.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from netsynth import privacy
from netsynth.errors import NetsynthError
from netsynth.fileio import atomic_path
from netsynth.flows import FlowSet
from netsynth.lock import LOCK_FILE, OWNER_FILE
from netsynth.machine import usable_cores
from netsynth.metrics import fidelity, real_floor
from netsynth.models.base import create, data_hash, load
from netsynth.models.registry import kind as kind_of, names
from netsynth.summary import seed_model_steps
from netsynth.tasks import efficiency as eff
from netsynth.tasks.augmentation import augmentation_curve, augmentation_target, check_fractions, pool_counts
from netsynth.tasks.tstr import FOREST, class_fidelity, forest, forest_f1
from netsynth.timing import require_timing, timing_fidelity

QUANTIZATIONS = ("int8-weight-only", "int8-dynamic")


@dataclass
class ExperimentSettings:
    models: list[str] = field(default_factory=lambda: names("generative"))
    fractions: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.15, 0.2])
    seeds: int = 3
    model_per_seed: bool = True  # each seed trains a model of its own; False: the seeds draw from one model
    epochs: int | None = None  # None: each model's default
    batch_size: int | None = None  # None: each model's default
    test_size: float = 0.2
    target_cap: int | None = None  # top classes up to min(majority, cap); None = the paper's majority rule
    bin_width: int = 1  # histogram bins of the fidelity metrics, in bytes (1 = exact values)
    efficiency: bool = True
    timing: bool = False  # models carry the empirical timing model; timing fidelity beside its floor
    paper_classes: int = 5
    paper_train_per_class: int = 500
    paper_gen_per_class: int = 100
    quick: bool = False

    @classmethod
    def quick_settings(cls, **overrides) -> "ExperimentSettings":
        """A fast look: few epochs, one seed, two fractions, a small efficiency protocol."""
        base = dict(seeds=1, epochs=10, fractions=[0.05, 0.2], paper_train_per_class=40, paper_gen_per_class=5,
                    quick=True)
        return cls(**{**base, **overrides})

    def check(self):
        check_fractions(self.fractions)
        private = sorted(set(self.models) & set(names("private")))
        if private:
            raise NetsynthError(f"--models: {private} made for a DP release, not among the paper's models the "
                                "benchmark compares (benchmarks/privacy_utility.py compares them); choose from "
                                f"{', '.join(names('generative'))}")
        unknown = sorted(set(self.models) - set(names("generative")))
        if unknown:
            raise NetsynthError(f"--models: unknown {unknown}; choose from {', '.join(names('generative'))}")
        if self.seeds < 1:
            raise NetsynthError("--seeds must be at least 1")


class Results:
    """results.json: every number the report shows, written whole after each step."""

    def __init__(self, out: Path, fingerprint: str, settings: ExperimentSettings, resume: bool, source: str,
                 provenance: dict):
        self.path = out / "results.json"
        if self.path.exists():
            if not resume:
                raise NetsynthError(f"{out} already holds results; use --resume to continue them, --overwrite to start again, or choose another folder")
            self.data = json.loads(self.path.read_text())
            if self.data.get("dataset", {}).get("fingerprint") != fingerprint:
                raise NetsynthError(f"{out} holds results for another dataset ({self.data.get('dataset', {}).get('source')}, "
                                    f"fingerprint {self.data.get('dataset', {}).get('fingerprint')}); "
                                    f"this one is {fingerprint}: choose another folder")
            # efficiency only adds steps: a run without it can be resumed with it (timed on another machine, say)
            defaults = dataclasses.asdict(ExperimentSettings())  # a setting added since the run: its default
            changed = sorted(k for k, v in dataclasses.asdict(settings).items()
                             if self.data["settings"].get(k, defaults[k]) != v and k != "efficiency")
            if changed:
                raise NetsynthError(f"{out} was run with other settings ({', '.join(changed)} differ); "
                                    "resume with the same options or choose another folder")
        else:
            self.data = {"dataset": {"source": source, "fingerprint": fingerprint}, "steps": {}}
        self.data["dataset"]["provenance"] = provenance
        self.data["settings"] = dataclasses.asdict(settings)
        env = environment()
        self.data["environment"] = env
        machines = self.data.setdefault("machines", [])  # a run resumed elsewhere (trained on a GPU, say) names both
        if env["machine"] not in machines:
            machines.append(env["machine"])

    def step(self, name: str, fn: Callable[..., dict], *args, log: Callable[[str], None] = print, **kwargs) -> dict:
        """fn(*args, **kwargs) stored under `name` as soon as it returns (with its seconds); on a resumed run, the
        stored value when the step is done already."""
        if name in self.data["steps"]:
            log(f"[done already] {name}")
            return self.data["steps"][name]
        log(f"[{time.strftime('%H:%M:%S')}] {name} ...")
        t0 = time.perf_counter()
        value = fn(*args, **kwargs)
        value.setdefault("seconds", round(time.perf_counter() - t0, 2))
        self.data["steps"][name] = value
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self.data, indent=1, default=_jsonable))
        return value

    def forget(self, name: str) -> None:
        self.data["steps"].pop(name, None)


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


@dataclass
class Split:
    """What the steps after the split read: the two sides, the classes with test flows, the seeds, the target."""
    train: FlowSet
    test: FlowSet  # only the classes that have test flows (a group split can leave a class without any)
    seeds: list[int]
    target: int  # flows per class after augmentation: the majority's count, or the cap

    @functools.cached_property
    def real_forest(self):
        """The forest of seed 0 on the real training flows, fitted once: it judges every model's class fidelity."""
        return forest(self.train, seed=0)


def split_step(flows: FlowSet, test_size: float, cache: Path, source: str) -> dict:
    try:
        train, test = flows.split(test_size=test_size, seed=0)
    except NetsynthError as e:
        raise NetsynthError(f"{source}: {e}") from None
    train.write(cache / "train.parquet")
    test.write(cache / "test.parquet")
    return {"train": train.class_counts(), "test": test.class_counts(), "grouped": flows.group is not None}


def read_split(cache: Path, settings: ExperimentSettings) -> Split:
    train, test = FlowSet.read(cache / "train.parquet"), FlowSet.read(cache / "test.parquet")
    target = augmentation_target(train.class_counts(), settings.target_cap)
    return Split(train, test.select(list(test.present_counts())), list(range(settings.seeds)), target)


def train_on_real_step(s: Split, timing: bool) -> dict:
    return {"f1": [forest_f1(s.train, s.test, seed=seed) for seed in s.seeds],
            "class_fidelity": class_fidelity(s.real_forest, s.test), **_timing_f1(s.train, s, timing)}


def train_step(kind: str, train: FlowSet, settings: ExperimentSettings, model_dir: Path, seed: int = 0) -> dict:
    batch_size = settings.batch_size
    if batch_size is None and settings.quick:  # at least 16 optimizer steps per epoch, even on a small set
        batch_size = min(256, max(16, len(train) // 16))
    model = create(kind)
    options = {"epochs": settings.epochs, "batch_size": batch_size, "checkpoint_dir": model_dir, "verbose": True,
               "timing": settings.timing or None, "seed": seed}
    t0 = time.perf_counter()
    model.fit(train, **model.used_train_options(options))
    took = time.perf_counter() - t0
    model.save(model_dir)
    history = getattr(model, "history_", {})
    epochs_run = len(history.get("epochs", []))
    return {"train_seconds": took, "parameters": model.n_parameters, "epochs_run": epochs_run,
            "optimizer_steps": epochs_run * history.get("steps_per_epoch", 0),
            "machine": environment()["machine"], "train_options": model.fit_options_,
            "settings": dataclasses.asdict(model.config), "history": history}


def generate_step(model_dir: Path, s: Split, pool_path: Path) -> dict:
    """A pool of every class: enough for augmentation (the target) and for one TSTR set per seed (the training
    split's counts each)."""
    model = load(model_dir)
    t0 = time.perf_counter()
    pool = model.sample(pool_counts(s.train.present_counts(), s.target, len(s.seeds)), seed=0)
    took = time.perf_counter() - t0
    pool_path.parent.mkdir(exist_ok=True)
    pool.write(pool_path)
    return {"flows": len(pool), "ms_per_flow": 1000 * took / len(pool)}


def synthetic_sets(kind: str, pool: FlowSet, s: Split) -> dict[int, FlowSet]:
    """Per seed, the synthetic training set of TSTR (the training split's class counts; seed 0's is also the one
    that fidelity and the privacy audit score): the seed's own slice of each class's pool, so that every seed scores
    a draw of its own. Subsets drawn at random from a pool of the training counts were one draw for every seed on a
    balanced dataset, and the mean of 3 seeds was one draw's luck (BENCHMARKS.md, "Synthetic draws per seed")."""
    counts = s.train.present_counts()
    members = {c: np.flatnonzero(pool.codes == pool.classes.index(c)) if c in pool.classes else [] for c in counts}
    short = [c for c, k in counts.items() if len(members[c]) < k * len(s.seeds)]
    if short:
        raise NetsynthError(f"the {kind} pool holds fewer than {len(s.seeds)} x the training flows of {short[0]!r} (a "
                            f"pool drawn by an earlier netsynth, one set for every seed): use --redo {kind}")
    return {seed: pool.take(np.concatenate([members[c][i * k:(i + 1) * k] for c, k in counts.items()]))
            for i, seed in enumerate(s.seeds)}


def fidelity_step(synth: FlowSet, s: Split, bin_width: int) -> dict:
    tested = list(s.test.classes)
    scores = fidelity(s.test, synth.select(tested), train=s.train.select(tested), bin_width=bin_width)
    timing = timing_fidelity(s.test, synth.select(tested))
    return {**scores, "timing": timing["macro"]} if timing else scores


def timing_floor_step(s: Split) -> dict:
    """The timing metrics of the real training split in the place of synthetic flows (as `real_floor`)."""
    return timing_fidelity(s.test, s.train.select(list(s.test.classes)))


def tstr_step(synth: dict[int, FlowSet], s: Split, timing: bool) -> dict:
    """TSTR F1 per seed, and the class fidelity of the synthetic flows (a forest trained on real flows labels them);
    with timing, the F1 of a forest that also sees each packet's inter-arrival time (seed 0)."""
    return {"f1": [forest_f1(synth[seed], s.test, seed=seed) for seed in s.seeds],
            "class_fidelity": class_fidelity(s.real_forest, synth[0]), **_timing_f1(synth[0], s, timing)}


def seed_model_step(kind: str, s: Split, settings: ExperimentSettings, model_dir: Path, seed: int) -> dict:
    """Seed `seed`'s own model: trained with that seed, then its draw of the training split's class counts (that
    seed) scored as TSTR by the forest of that seed. Seed 0 is the model that every other step uses; a table cell
    that is the mean over seeds then holds the spread between trainings (on IoT Sentinel LLaMA's TSTR / train on
    real went 0.93, 0.95 and 1.00 under training seeds 0-2; BENCHMARKS.md, "The cool-down after early stopping"),
    not only the draws'."""
    trained = train_step(kind, s.train, settings, model_dir, seed=seed)
    synth = load(model_dir).sample(s.train.present_counts(), seed=seed)
    return {"train": trained, "f1": forest_f1(synth, s.test, seed=seed),
            "class_fidelity": class_fidelity(s.real_forest, synth)}


def _timing_f1(train: FlowSet, s: Split, timing: bool) -> dict:
    return {"f1_timing": forest_f1(train, s.test, seed=s.seeds[0], timing=True)} if timing else {}


def privacy_step(model_dir: Path, synth: FlowSet, s: Split) -> dict:
    """The privacy audit of one synthetic set; the white-box attack where the model has a likelihood."""
    model = load(model_dir)
    tested = list(s.test.present_counts())
    return privacy.audit(s.train.select(tested), s.test.select(tested), synth.select(tested),
                         log_likelihood=getattr(model, "log_likelihood", None))


def augmentation_step(s: Split, pools: dict[str, FlowSet], models: list[str], fractions: list[float],
                      log: Callable[[str], None], kept: dict | None = None) -> dict:
    """The augmentation curves of real-only, the baselines and `models` (whose flows are `pools`); with `kept`
    (stored records of some of them), only the others' records, merged in the order a whole run writes."""
    on_result = lambda r: log(f"  {r['method']:16s} f={r['fraction']:.2f} seed {r['seed']}: F1 {r['f1']:.3f}")  # noqa: E731
    old = kept["records"] if kept else []
    methods = ["real-only", *names("baseline"), *models]
    done = {r["method"] for r in old}
    new = augmentation_curve(s.train, s.test, pools, fractions, s.seeds, target=s.target, on_result=on_result,
                             only=[m for m in methods if m not in done])
    records = sorted(old + new, key=lambda r: (r["seed"], r["fraction"], methods.index(r["method"])))
    return {"target_per_class": s.target, "records": records}


def efficiency_step(kind: str, subset: FlowSet, gen_per_class: int, folder: Path, log: Callable[[str], None]) -> dict:
    """RQ4 for one kind: the paper's protocol (batch 1) and a practical one (training batch 256, one call for all),
    each training and each generation in a fresh process."""
    row = {}
    for protocol, batch in (("paper", 1), ("practical", 256)):
        log(f"  {protocol}: training on {len(subset)} flows at batch {batch}, then generating "
            f"{gen_per_class * len(subset.classes)} flows {'one per call' if protocol == 'paper' else 'in one call'}")
        training = eff.isolated(eff.training_run, kind, subset, batch, folder / protocol)
        generation = eff.isolated(eff.generation_run, folder / protocol, gen_per_class, 1 if protocol == "paper" else None)
        row[protocol] = {**training, **generation}
    return {**row, "disk_mb": row["practical"]["disk_mb"], "parameters": row["practical"]["parameters"],
            "classes": len(subset.classes)}


def quantization_step(folder: Path, mode: str, s: Split, settings: ExperimentSettings) -> dict:
    """llama as trained (float32) or with int8 weights; int8 kernels are CPU kernels, so all three run there.
    Generation is timed in fresh processes; fidelity and TSTR use one synthetic set sampled here."""
    full = load(folder)
    model = full if mode == "float32" else eff.quantized(full, mode)
    quantize = None if mode == "float32" else mode
    timed = eff.isolated(eff.generation_run, folder, settings.paper_gen_per_class, None, quantize, "cpu",
                         max(1, settings.paper_gen_per_class // 10))
    synth = model.sample(s.train.present_counts(), seed=0, device="cpu")  # one synthetic set, a forest per seed
    return {"size_mb": eff.module_mb(model.module_), "gen_ms_per_flow_practical": timed["gen_ms_per_flow"],
            "gen_ms_per_flow_batch1": timed["single"]["gen_ms_per_flow"], "parameters": full.n_parameters,
            "fidelity": fidelity_step(synth, s, settings.bin_width)["macro"],
            "tstr_f1": [forest_f1(synth, s.test, seed=seed) for seed in s.seeds]}


def forget_model(res: Results, cache: Path, kind: str) -> None:
    """Drop a model, its synthetic flows and every result that used them (its augmentation records; quantization
    is llama's), so that a resumed run trains it again (after its defaults changed, say)."""
    import shutil

    for name in [f"{step}:{kind}" for step in ("train", "generate", "fidelity", "tstr", "privacy", "efficiency")] + \
            ([f"quantization:{m}" for m in ("float32", *QUANTIZATIONS)] if kind == "llama" else []) + \
            seed_model_steps(res.data["steps"], kind):
        res.forget(name)
    augmentation = res.data["steps"].get("augmentation")
    if augmentation:
        augmentation["records"] = [r for r in augmentation["records"] if r["method"] != kind]
    for model_dir in [cache / "models" / kind, *(cache / "models").glob(f"{kind}-seed*")]:
        shutil.rmtree(model_dir, ignore_errors=True)
    (cache / "synthetic" / f"{kind}.parquet").unlink(missing_ok=True)


def augmented(res: Results) -> set[str]:
    """The methods whose augmentation records the results hold."""
    return {r["method"] for r in res.data["steps"].get("augmentation", {}).get("records", [])}


def needs_flows(res: Results, kind: str) -> bool:
    """Whether a step still to run reads this model's synthetic flows (a resumed run whose cache is gone, a
    committed results folder say, redoes one model without the others' models or flows)."""
    steps = res.data["steps"]
    return kind not in augmented(res) or any(f"{name}:{kind}" not in steps for name in ("fidelity", "tstr", "privacy"))


def run_experiment(flows_path: str | Path, out_dir: str | Path, settings: ExperimentSettings, resume: bool = False,
                   log: Callable[[str], None] = print, redo: list[str] = ()) -> dict:
    """The whole experiment; with `resume`, finished steps are kept, except those of the kinds in `redo`."""
    settings.check()
    unknown = sorted(set(redo) - set(settings.models))
    if unknown:
        raise NetsynthError(f"--redo: {unknown} are not among the benchmark's models {settings.models}")
    flows = FlowSet.read(flows_path)
    if settings.timing:
        require_timing(flows, f"--timing: {flows_path}: the flows")
    out = Path(out_dir)
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    (out / ".gitignore").write_text(f"cache/\n{LOCK_FILE}\n{OWNER_FILE}\n")  # the folder's results alone go to git
    res = Results(out, data_hash(flows), settings, resume, str(flows_path), flows.meta.get("provenance", {}))
    for kind in redo:
        forget_model(res, cache, kind)
    step = lambda name, fn, *args: res.step(name, fn, *args, log=log)  # noqa: E731

    if not (cache / "train.parquet").exists():
        res.forget("split")  # the split is seeded: made again, it is the one the stored results used
    step("split", split_step, flows, settings.test_size, cache, str(flows_path))
    s = read_split(cache, settings)
    step("floor", real_floor, s.test, s.train, settings.bin_width)
    if settings.timing:
        step("timing_floor", timing_floor_step, s)
    step("train_on_real", train_on_real_step, s, settings.timing)
    pools: dict[str, FlowSet] = {}
    for kind in settings.models:
        model_dir, pool_path = cache / "models" / kind, cache / "synthetic" / f"{kind}.parquet"
        step(f"train:{kind}", train_step, kind, s.train, settings, model_dir)
        if not needs_flows(res, kind):
            continue
        if not pool_path.exists():
            res.forget(f"generate:{kind}")  # the cache was removed: generate again
            if not model_dir.exists():
                raise NetsynthError(f"{model_dir}: the {kind} model is gone from the cache; use --redo {kind}")
        step(f"generate:{kind}", generate_step, model_dir, s, pool_path)
        pools[kind] = FlowSet.read(pool_path)
        synth = synthetic_sets(kind, pools[kind], s)
        step(f"fidelity:{kind}", fidelity_step, synth[0], s, settings.bin_width)
        step(f"tstr:{kind}", tstr_step, synth, s, settings.timing)
        step(f"privacy:{kind}", privacy_step, model_dir, synth[0], s)
    majority = max(s.train.class_counts().values())
    if s.target < majority:
        log(f"augmentation tops classes up to {s.target} flows (capped), not the majority's {majority}")
    kept = res.data["steps"].get("augmentation")
    if kept and set(settings.models) - augmented(res):
        res.forget("augmentation")  # add the redone models' records to the others'
    step("augmentation", augmentation_step, s, pools, settings.models, settings.fractions, log, kept)
    if settings.model_per_seed:
        # the cheapest models first, so that a run stopped on the way holds the most models of every seed
        seeded = sorted((k for k in settings.models if kind_of(k).trains),
                        key=lambda k: res.data["steps"][f"train:{k}"]["train_seconds"])
        for k in seeded:
            for seed in s.seeds[1:]:
                step(f"tstr:{k}:seed{seed}", seed_model_step, k, s, settings, cache / "models" / f"{k}-seed{seed}", seed)
    if settings.efficiency:
        subset = eff.paper_subset(s.train, settings.paper_classes, settings.paper_train_per_class)
        for kind in settings.models:
            step(f"efficiency:{kind}", efficiency_step, kind, subset, settings.paper_gen_per_class,
                 cache / "efficiency" / kind, log)
        if "llama" in settings.models:
            for mode in ("float32", *QUANTIZATIONS):
                step(f"quantization:{mode}", quantization_step, cache / "models" / "llama", mode, s, settings)
    return res.data
