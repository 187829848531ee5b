"""Efficiency (DESIGN section 6): training seconds per epoch, generation milliseconds per flow, peak memory,
size on disk, parameters; under the paper's protocol (batch size 1) and practical batches; and post-training
int8 quantization of llama (torchao weight-only; torch's dynamic activation quantization)."""
from __future__ import annotations

import copy
import functools
import io
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import torch

from netsynth.flows import FlowSet
from netsynth.models.base import Generator, create


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


def disk_mb(model: Generator) -> float:
    with tempfile.TemporaryDirectory() as d:
        model.save(d)
        return sum(p.stat().st_size for p in Path(d).iterdir()) / 2**20


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


def measure_training(kind: str, flows: FlowSet, batch_size: int, epochs: int = 1, **settings) -> tuple[Generator, dict]:
    model = create(kind, **settings)
    options = {"epochs": epochs, "batch_size": batch_size, "patience": epochs + 1}
    with peak_memory() as mem:
        t0 = time.perf_counter()
        model.fit(flows, **model.used_train_options(options))
        took = time.perf_counter() - t0
    seconds = model.history_["seconds"] if hasattr(model, "history_") else [took]
    return model, {"train_s_per_epoch": float(np.mean(seconds)), "train_peak_mb": mem["peak_mb"],
                   "train_added_mb": mem["added_mb"],
                   "batch_size": batch_size, "epochs": epochs, "train_flows": len(flows)}


def measure_generation(model: Generator, per_class: int, batch_size: int | None, device: str | None = None) -> dict:
    """batch_size 1: one flow per call, as a service answering single requests would; None: one call for all."""
    counts = {c: per_class for c in model.classes_}
    sample = functools.partial(model.sample, device=device)
    sample({model.classes_[0]: 1}, seed=0)  # warm-up (lazy imports, first kernels)
    with peak_memory() as mem:
        t0 = time.perf_counter()
        if batch_size == 1:
            n = 0
            for c in model.classes_:
                for i in range(per_class):
                    sample({c: 1}, seed=i)
                    n += 1
        else:
            n = len(sample(counts, seed=0))
        took = time.perf_counter() - t0
    return {"gen_ms_per_flow": 1000 * took / n, "gen_peak_mb": mem["peak_mb"], "gen_added_mb": mem["added_mb"], "gen_batch": batch_size or "all", "gen_flows": n}


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
    return q

