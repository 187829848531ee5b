"""What a FlowSet holds, per class: the numbers behind `netsynth inspect`."""
from __future__ import annotations

import numpy as np

from netsynth.flows import FlowSet


def class_summary(flows: FlowSet) -> list[dict]:
    rows = []
    signed = flows.signed
    sequences = flows.sequences()
    for code, name in enumerate(flows.classes):
        idx = np.flatnonzero(flows.codes == code)
        s = signed[idx]
        up, down = s[s > 0], -s[s < 0]
        rows.append({"class": name, "flows": len(idx), "share": len(idx) / max(1, len(flows)),
                     "mean_length": float(flows.length[idx].mean()) if len(idx) else 0.0,
                     "mean_up": float(up.mean()) if len(up) else 0.0, "mean_down": float(down.mean()) if len(down) else 0.0,
                     "distinct": len({sequences[i] for i in idx})})
    return rows


def plot_summary(flows: FlowSet, path) -> None:
    from netsynth.report import pyplot, save_png

    fig, axes = pyplot().subplots(1, 3, figsize=(15, 4))
    counts = flows.class_counts()
    axes[0].barh(list(counts), list(counts.values()))
    axes[0].set_title("flows per class")
    axes[0].tick_params(axis="y", labelsize=6)
    axes[1].hist(flows.length, bins=np.arange(0.5, flows.n_packets + 1.5))
    axes[1].set_title("packets per flow")
    signed = flows.signed[flows.direction != 0]
    axes[2].hist(signed, bins=100)
    axes[2].set_title("signed payload length (+ up, - down)")
    fig.tight_layout()
    save_png(fig, path)
