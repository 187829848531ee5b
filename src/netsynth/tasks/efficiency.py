"""Efficiency (DESIGN section 6): training seconds per epoch, generation milliseconds per flow, peak memory,
size on disk, parameters; under the paper's protocol (batch size 1) and practical batches; and post-training
int8 quantization of llama (torchao weight-only; torch's dynamic activation quantization).

Each measurement runs in a fresh process (`isolated`): a long benchmark process holds memory and warm caches
from earlier steps, which hid peak memory (0 MB added) and skewed timings. Each time is measured more than
once; rows hold the median and the smallest and largest of the repeats."""
from __future__ import annotations

import copy
import io
import multiprocessing
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import torch

from netsynth.flows import FlowSet
from netsynth.models.base import Generator, create, load


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


@contextmanager
def peak_memory():
    """Peak memory (MB) while the block runs: process RSS sampled every 5 ms on the CPU (allocator peak on a GPU).
    Yields a dict that holds "peak_mb" once the block ends, and "added_mb", the peak above the memory the process
    held when the block started (what the measured work itself needed)."""
    out: dict = {}
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated() / 2**20 if torch.cuda.is_available() else _rss_mb()
    peak, stop = [_rss_mb()], threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        peak[0] = max(peak[0], _rss_mb())
        out["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else peak[0]
        out["added_mb"] = out["peak_mb"] - start


def isolated(fn, *args):
    """fn(*args) in a fresh process, spawned so that it inherits nothing of this one."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in Path(folder).iterdir()) / 2**20


def spread(values) -> dict:
    """Median, smallest and largest of repeated measurements."""
    return {"median": float(np.median(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def module_mb(module: torch.nn.Module) -> float:
    """Serialized size of a (possibly quantized) module's weights. Quantized tensors have no safetensors form,
    so this measures torch.save's bytes in memory; nothing is written or loaded back."""
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.tell() / 2**20


def paper_subset(train: FlowSet, n_classes: int = 5, per_class: int = 500, seed: int = 0) -> FlowSet:
    """The paper's efficiency set: the n largest classes, `per_class` flows each (fewer where a class is smaller)."""
    counts = train.class_counts()
    top = sorted(counts, key=lambda c: -counts[c])[:n_classes]
    rng = np.random.default_rng(seed)
    keep = [rng.choice(np.flatnonzero(train.codes == train.classes.index(c)), size=min(per_class, counts[c]), replace=False)
            for c in top]
    return train.take(np.sort(np.concatenate(keep))).select(top)


def measure_training(kind: str, flows: FlowSet, batch_size: int, epochs: int = 2) -> tuple[Generator, dict]:
    """Train `epochs` epochs, each timed (models trained in one pass: the pass, `epochs` times)."""
    model = create(kind)
    options = model.used_train_options({"epochs": epochs, "batch_size": batch_size, "patience": epochs + 1})
    seconds = []
    with peak_memory() as mem:
        for _ in range(1 if "epochs" in model.train_options else epochs):
            t0 = time.perf_counter()
            model.fit(flows, **options)
            seconds.append(time.perf_counter() - t0)
    seconds = model.history_["seconds"] if hasattr(model, "history_") else seconds
    return model, {"train_s_per_epoch": spread(seconds), "train_peak_mb": mem["peak_mb"], "train_added_mb": mem["added_mb"],
                   "batch_size": batch_size, "epochs": len(seconds), "train_flows": len(flows)}


def measure_generation(model: Generator, per_class: int, batch_size: int | None, device: str | None = None,
                       repeats: int = 3) -> dict:
    """batch_size 1: one flow per call, as a service answering single requests would; None: one call for all."""
    counts = {c: per_class for c in model.classes_}
    model.sample({model.classes_[0]: 1}, seed=0, device=device)  # warm-up (lazy imports, first kernels)
    per_flow = []
    with peak_memory() as mem:
        for _ in range(repeats):
            t0 = time.perf_counter()
            if batch_size == 1:
                n = sum(len(model.sample({c: 1}, seed=i, device=device)) for c in model.classes_ for i in range(per_class))
            else:
                n = len(model.sample(counts, seed=0, device=device))
            per_flow.append(1000 * (time.perf_counter() - t0) / n)
    return {"gen_ms_per_flow": spread(per_flow), "gen_peak_mb": mem["peak_mb"], "gen_added_mb": mem["added_mb"],
            "gen_batch": batch_size or "all", "gen_flows": n, "repeats": repeats}


def training_run(kind: str, flows: FlowSet, batch_size: int, folder: Path) -> dict:
    """`measure_training`, then the model saved to `folder`; meant to run `isolated`."""
    model, row = measure_training(kind, flows, batch_size)
    model.save(folder)
    return {**row, "parameters": model.n_parameters, "disk_mb": folder_mb(folder)}


def generation_run(folder: Path, per_class: int, batch_size: int | None, quantize: str | None = None,
                   device: str | None = None, single_per_class: int = 0) -> dict:
    """`measure_generation` of the model saved in `folder` (int8-quantized first if asked); meant to run `isolated`.
    With `single_per_class`, one flow per call is timed too, afterwards (its memory is then not its own)."""
    model = load(folder)
    model = quantized(model, quantize) if quantize else model
    row = measure_generation(model, per_class, batch_size, device)
    if single_per_class:
        row["single"] = measure_generation(model, single_per_class, 1, device)
    return row


def quantized(model: Generator, mode: str) -> Generator:
    """A copy of a llama/mamba model with int8 weights: "int8-weight-only" (torchao) or "int8-dynamic"
    (torch's dynamic quantization: int8 weights, activations quantized on the fly)."""
    q = copy.copy(model)
    module = copy.deepcopy(model.module_).cpu().eval()
    if mode == "int8-weight-only":
        from torchao.quantization import Int8WeightOnlyConfig, quantize_
        quantize_(module, Int8WeightOnlyConfig())
    elif mode == "int8-dynamic":
        with warnings.catch_warnings():  # torch deprecates its quantized dtypes in favour of torchao's, but keeps them
            warnings.simplefilter("ignore", UserWarning)
            module = torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)
    else:
        raise ValueError(mode)
    q.module_ = module
    q.auto_bf16 = False  # int8 weights are not cast to bf16: precision auto samples them as they are
    return q

