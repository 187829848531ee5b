"""Every PNG netsynth writes: the FlowSet overview of `netsynth inspect` and the benchmark report's figures.
Pure renderers: they draw what they are given, on matplotlib's file-only Agg backend (no display is used)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from netsynth.fileio import atomic_path
from netsynth.flows import FlowSet
from netsynth.metrics import METRIC_NAMES


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_png(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    pyplot().close(fig)


def flowset_overview(flows: FlowSet, path) -> None:
    """Flows per class, packets per flow, and the signed payload lengths."""
    fig, axes = pyplot().subplots(1, 3, figsize=(15, 4))
    counts = flows.class_counts()
    axes[0].barh(list(counts), list(counts.values()))
    axes[0].set_title("flows per class")
    axes[0].tick_params(axis="y", labelsize=6)
    axes[1].hist(flows.length, bins=np.arange(0.5, flows.n_packets + 1.5))
    axes[1].set_title("packets per flow")
    axes[2].hist(flows.signed[flows.direction != 0], bins=100)
    axes[2].set_title("signed payload length (+ up, - down)")
    fig.tight_layout()
    save_png(fig, path)


def fidelity_radar(path: Path, series: list[tuple[str, dict]], reference: str) -> None:
    """One polygon of 1 - metric per (name, macro metrics); the `reference` one dashed."""
    plt = pyplot()
    angles = np.linspace(0, 2 * np.pi, len(METRIC_NAMES), endpoint=False).tolist()
    fig, ax = plt.subplots(figsize=(7, 7), subplot_kw={"polar": True})
    for name, macro in series:
        values = [1 - macro[n] for n in METRIC_NAMES]  # inverted: a larger polygon is better
        ax.plot(angles + angles[:1], values + values[:1], label=name, linestyle="--" if name == reference else "-")
        ax.fill(angles + angles[:1], values + values[:1], alpha=0.05)
    ax.set_xticks(angles)
    ax.set_xticklabels(METRIC_NAMES, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title("fidelity: 1 - metric (larger is better)")
    ax.legend(loc="upper right", bbox_to_anchor=(1.3, 1.1), fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def augmentation_curves(path: Path, curves: list[tuple[str, list[float], list[float], bool]], fractions: list[float],
                        full_data: float | None) -> None:
    """(label, means, spreads, dashed) per method over the kept fractions; a dotted line at the full-data F1."""
    fig, ax = pyplot().subplots(figsize=(8, 5))
    for label, means, stds, dashed in curves:
        ax.errorbar([100 * f for f in fractions], means, yerr=stds, marker="o", capsize=3, label=label,
                    linestyle="--" if dashed else "-")
    if full_data is not None:
        ax.axhline(full_data, color="grey", linestyle=":", label="all real data")
    ax.set_xlabel("kept fraction of the real training flows (%)")
    ax.set_ylabel("macro F1 on the real test split")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
