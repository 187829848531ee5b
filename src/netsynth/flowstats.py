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
