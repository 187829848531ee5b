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
    """Flows per class, packets per flow, and the signed lengths, labelled with what the lengths measure."""
    plt = pyplot()
    counts = flows.class_counts()
    lengths = flows.meta.get("provenance", {}).get("lengths") or "length (bytes)"
    # the class panel grows with the classes so that every name stays readable (9 pt)
    fig = plt.figure(figsize=(15, max(4.5, 0.22 * len(counts) + 1.5)))
    grid = fig.add_gridspec(1, 3, width_ratios=[1.2, 1, 1.4])
    ax = fig.add_subplot(grid[0])
    ax.barh(list(counts), list(counts.values()))
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=9)
    ax.set(title="flows per class", xlabel="flows")
    ax = fig.add_subplot(grid[1])
    ax.hist(flows.length, bins=np.arange(0.5, flows.n_packets + 1.5))
    ax.set(title="packets per flow", xlabel=f"packets kept (of N = {flows.n_packets})", ylabel="flows")
    ax = fig.add_subplot(grid[2])
    ax.hist(flows.signed[flows.direction != 0], bins=100)
    ax.set(title="signed lengths (+ upstream, - downstream)", xlabel=lengths, ylabel="packets")
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
    ax.set_xticklabels(METRIC_NAMES, fontsize=9)
    for label, angle in zip(ax.get_xticklabels(), angles):  # each name outside the ring, away from the data
        cos = np.cos(angle)
        label.set_horizontalalignment("left" if cos > 0.1 else "right" if cos < -0.1 else "center")
    ax.tick_params(axis="x", pad=10)
    ax.set_ylim(0, 1)
    ax.set_rlabel_position(180 / len(METRIC_NAMES))  # radial ticks between two metric axes, not on one
    ax.tick_params(axis="y", labelsize=7)
    for label in ax.get_yticklabels():  # readable where a polygon crosses them
        label.set_bbox({"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})
    ax.set_title("fidelity: 1 - metric (larger is better)", pad=24)
    ax.legend(loc="upper left", bbox_to_anchor=(1.08, 1.0), fontsize=9)
    fig.tight_layout()
    save_png(fig, path)


def augmentation_curves(path: Path, curves: list[tuple[str, list[float], list[float], bool]], fractions: list[float],
                        full_data: float | None) -> None:
    """(label, means, spreads, dashed) per method over the kept fractions; a dotted line at the full-data F1."""
    fig, ax = pyplot().subplots(figsize=(8, 5))
    for label, means, stds, dashed in curves:
        ax.errorbar([100 * f for f in fractions], [100 * m for m in means], yerr=[100 * s for s in stds], marker="o",
                    capsize=3, label=label, linestyle="--" if dashed else "-")
    if full_data is not None:
        ax.axhline(100 * full_data, color="grey", linestyle=":", label="all real data")
    ax.set_xlabel("kept fraction of the real training flows (%)")
    ax.set_ylabel("macro F1 on the real test split (%)")
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
