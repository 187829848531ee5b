"""Every figure of the benchmark report, computed from results.json alone (and the paper's numbers).

Means and spreads over seeds, differences to train-on-real, augmentation cells, the efficiency and
quantization rows, and the checks against the project's targets. The renderers (`report`: Markdown and CSV,
`plots`: PNG) only arrange what these functions return.
"""
from __future__ import annotations

import numpy as np

from netsynth import paper
from netsynth.metrics import METRIC_NAMES


def mean_std(values) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def fidelity_series(steps: dict, models: list[str]) -> list[tuple[str, dict]]:
    """(name, macro metrics) of the real-vs-real floor, then of each model."""
    return [("floor", steps["floor"]["macro"])] + [(m, steps[f"fidelity:{m}"]["macro"]) for m in models]


def tstr_rows(steps: dict, models: list[str]) -> list[dict]:
    """Train on real, then each model: F1 per seed, its difference (points) and ratio to train on real, the class
    fidelity (None in results written before it existed), the paper's F1."""
    real = steps["train_on_real"]["f1"]
    rows = [{"approach": "train on real", "f1": real, "delta": None, "ratio": None,
             "class_fidelity": steps["train_on_real"].get("class_fidelity"),
             "paper": [paper.TSTR_F1[d]["train on real"] for d in paper.TSTR_F1]}]
    for m in models:
        f1 = steps[f"tstr:{m}"]["f1"]
        rows.append({"approach": m, "f1": f1, "delta": 100 * (np.mean(f1) - np.mean(real)),
                     "ratio": np.mean(f1) / np.mean(real) if np.mean(real) else float("nan"),
                     "class_fidelity": steps[f"tstr:{m}"].get("class_fidelity"),
                     "paper": [paper.TSTR_F1[d].get(m, "-") for d in paper.TSTR_F1]})
    return rows


def augmentation_cells(records: list[dict]) -> tuple[list[str], list[float], dict]:
    """Methods, fractions, and the F1 of every seed per (method, fraction)."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    fractions = sorted({r["fraction"] for r in records})
    cell = {(m, f): [r["f1"] for r in records if r["method"] == m and r["fraction"] == f] for m in methods for f in fractions}
    return methods, fractions, cell


def efficiency_kinds(steps: dict, models: list[str]) -> list[str]:
    return [m for m in models if f"efficiency:{m}" in steps]


def quantization_modes(steps: dict) -> list[str]:
    return [k.split(":", 1)[1] for k in steps if k.startswith("quantization:")]


def target_checks(steps: dict) -> list[tuple[str, bool, str]]:
    """The project's targets for llama, as (target, met, the numbers)."""
    checks = []
    if "tstr:llama" in steps and "train_on_real" in steps:
        real, synth = np.mean(steps["train_on_real"]["f1"]), np.mean(steps["tstr:llama"]["f1"])
        gap = 100 * (real - synth)
        checks.append(("llama TSTR macro F1 within 5 points of train-on-real", gap <= 5,
                       f"{100 * synth:.2f} vs {100 * real:.2f}: {gap:.2f} points below"))
    if "augmentation" in steps and "train_on_real" in steps:
        records = steps["augmentation"]["records"]
        low = min(r["fraction"] for r in records)
        only = np.mean([r["f1"] for r in records if r["method"] == "real-only" and r["fraction"] == low])
        llama = [r["f1"] for r in records if r["method"] == "llama" and r["fraction"] == low]
        if llama:
            full = np.mean(steps["train_on_real"]["f1"])
            closed = (np.mean(llama) - only) / (full - only) if full > only else float("nan")
            checks.append((f"at {100 * low:g} % of the data, llama augmentation closes at least half of the gap to full data",
                           bool(closed >= 0.5), f"real-only {100 * only:.2f}, llama {100 * np.mean(llama):.2f}, "
                           f"full data {100 * full:.2f}: {100 * closed:.0f} % of the gap closed"))
    if "fidelity:llama" in steps and "floor" in steps:
        worst = max((steps["fidelity:llama"]["macro"][n] / max(steps["floor"]["macro"][n], 1e-9), n)
                    for n in METRIC_NAMES if n.startswith("jsd"))
        checks.append(("llama's JSDs no more than twice the real-vs-real floor", worst[0] <= 2,
                       f"largest ratio {worst[0]:.2f} ({worst[1]})"))
    return checks
