"""Shared set-up of the benchmarks: the IoT Sentinel split."""
import sys
from pathlib import Path

from netsynth.ingest import ingest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def iot_split():
    """The training and test split of IoT Sentinel, as the README's results use it."""
    folder = SHARED / "iot-sentinel"
    if not folder.is_dir():
        sys.exit(f"{folder} not found: the benchmarks run on the shared IoT Sentinel captures")
    flows, _ = ingest([folder])
    return flows.split(test_size=0.2, seed=0)


def iot_train():
    return iot_split()[0]


def prepared(kind: str, train):
    """A model of `kind` at its defaults, set up for `train` as fitting it would be (classes, codec) but untrained:
    the benchmarks that time a training step build its module themselves (training.py, attention.py,
    diffusion_step.py)."""
    import netsynth

    model = netsynth.create(kind)
    model.classes_, model.n_packets_, model.max_size_ = train.classes, train.n_packets, 1500
    model._prepare(train, private=False)
    return model


def matmul_peak(dtype=None, size: int = 1024, repeats: int = 5) -> float:
    """The matmul rate in GFLOP/s (best of `repeats` products of two size x size matrices) of the device that
    netsynth trains and samples on here: the GPU where there is one (then at size 8192: a GPU's peak needs large
    products), else the CPU."""
    import time

    import torch

    from netsynth.train import resolve_device

    device = resolve_device("auto")
    size = 8192 if device.type == "cuda" else size
    a = torch.randn(size, size, dtype=dtype or torch.float32, device=device)
    b = torch.randn(size, size, dtype=dtype or torch.float32, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 / best / 1e9


def matmul_flops_per_token(module) -> int:
    """2 x the weights of every Linear layer: the matmul work of one token through the model (attention and the
    scan aside, which are small beside it at these widths)."""
    import torch

    return 2 * sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))


def trained_cvae(data: str | None, seed: int):
    """(train, test, model): the split of the FlowSet at `data` (IoT Sentinel without one) and the CVAE at its
    defaults trained on it with `seed` (cvae_prior.py, cvae_temperature.py)."""
    import time

    import netsynth

    train, test = netsynth.FlowSet.read(data).split(test_size=0.2, seed=0) if data else iot_split()
    t0 = time.perf_counter()
    model = netsynth.create("cvae").fit(train, seed=seed)
    print(f"cvae on {data or 'IoT Sentinel'}: trained in {time.perf_counter() - t0:.0f} s, "
          f"{len(model.history_['epochs'])} epochs, seed {seed}")
    return train, test, model


def quality_lines(train, test, synth, forest_seed: int = 0) -> tuple[str, str]:
    """Two lines on `synth` (quality.py, cvae_prior.py, temperature.py): TSTR beside train on real and class
    fidelity; the six metrics against the test split."""
    from netsynth.metrics import fidelity
    from netsynth.tasks.tstr import tstr

    f1 = tstr(train, test, synth, seed=forest_seed)
    metrics = fidelity(test, synth, train=train)["macro"]
    return (f"TSTR {100 * f1['train_on_synthetic']:.1f} % (train on real {100 * f1['train_on_real']:.1f} %, ratio "
            f"{f1['train_on_synthetic'] / f1['train_on_real']:.2f}); class fidelity "
            f"{100 * f1['class_fidelity_synthetic']:.1f} % (real test flows {100 * f1['class_fidelity_real']:.1f} %)",
            "  ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
