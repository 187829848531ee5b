"""Renders results.json (written by `netsynth benchmark`) as report.md, CSV tables and PNG plots.

It computes nothing new: it arranges the stored numbers, with means and spreads over seeds, beside the
paper's figures, and checks them against the project's targets.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from netsynth import paper
from netsynth.errors import NetsynthError
from netsynth.fileio import atomic_path
from netsynth.metrics import METRIC_NAMES
from netsynth.models.registry import display, names



def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display is needed or used)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_png(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    pyplot().close(fig)


def _ms(values) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def _pct(values) -> str:
    m, s = _ms(values)
    return f"{100 * m:.2f} ± {100 * s:.2f}" if len(values) > 1 else f"{100 * m:.2f}"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def render(results_dir: str | Path) -> Path:
    out = Path(results_dir)
    path = out / "results.json"
    if not path.is_file():
        raise NetsynthError(f"{out}: no results.json (run `netsynth benchmark` first)")
    res = json.loads(path.read_text())
    steps = res["steps"]
    models = [m for m in res["settings"]["models"] if f"fidelity:{m}" in steps]
    md = [f"# netsynth benchmark: {res['dataset']['source']}", "",
          f"Machine: {res['environment']['machine']}; netsynth {res['environment']['netsynth']}, torch "
          f"{res['environment']['torch']}, transformers {res['environment']['transformers']}. Settings: "
          f"{res['settings']['seeds']} seed(s), fractions {res['settings']['fractions']}, epochs "
          f"{res['settings']['epochs'] or 'model defaults'}{' (quick)' if res['settings']['quick'] else ''}.", ""]
    if "split" in steps:
        train, test = steps["split"]["train"], steps["split"]["test"]
        untested = [c for c, k in test.items() if not k]
        md += [f"Split ({'by capture' if steps['split']['grouped'] else 'stratified'}): {sum(train.values())} training "
               f"and {sum(test.values())} test flows, {len(train)} classes (largest training class: {max(train.values())})"
               + (f"; no test flows for {untested} (left out of the fidelity metrics)" if untested else "") + ".", ""]
    md += _rq1(out, steps, models, res["settings"]) + _rq2(out, steps, models) + _rq3(out, steps, models) + _rq4(out, steps, models)
    md += _targets(steps)
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(md) + "\n")
    return out / "report.md"


def _rq1(out: Path, steps: dict, models: list[str], settings: dict) -> list[str]:
    if "floor" not in steps or not models:
        return []
    rows = [["real vs real (floor)"] + [f"{steps['floor']['macro'][n]:.4f}" for n in METRIC_NAMES]]
    rows += [[display(m)] + [f"{steps[f'fidelity:{m}']['macro'][n]:.4f}" for n in METRIC_NAMES] for m in models]
    _write_csv(out / "fidelity.csv", ["model"] + METRIC_NAMES, rows)
    _radar(out / "fidelity_radar.png", steps, models)
    return ["## RQ1: fidelity (macro over classes, lower is better)", "",
            "Synthetic flows (the training split's class counts) against the real test split; leakage against the "
            "training split. The floor compares two disjoint halves of the real test split. Histogram bins: "
            + ("exact signed lengths." if settings.get("bin_width", 1) <= 1 else f"{settings['bin_width']} bytes wide."), "",
            _table(["model"] + METRIC_NAMES, rows), "", "![fidelity radar](fidelity_radar.png)", "",
            f"Paper: {paper.FINDINGS['RQ1']}", ""]


def _radar(path: Path, steps: dict, models: list[str]) -> None:
    plt = pyplot()
    angles = np.linspace(0, 2 * np.pi, len(METRIC_NAMES), endpoint=False).tolist()
    fig, ax = plt.subplots(figsize=(7, 7), subplot_kw={"polar": True})
    series = [("real vs real", steps["floor"]["macro"])] + [(display(m), steps[f"fidelity:{m}"]["macro"]) for m in models]
    for name, macro in series:
        values = [1 - macro[n] for n in METRIC_NAMES]  # inverted: a larger polygon is better
        ax.plot(angles + angles[:1], values + values[:1], label=name, linestyle="--" if name == "real vs real" else "-")
        ax.fill(angles + angles[:1], values + values[:1], alpha=0.05)
    ax.set_xticks(angles)
    ax.set_xticklabels(METRIC_NAMES, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title("fidelity: 1 - metric (larger is better)")
    ax.legend(loc="upper right", bbox_to_anchor=(1.3, 1.1), fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def _rq2(out: Path, steps: dict, models: list[str]) -> list[str]:
    if "train_on_real" not in steps:
        return []
    real = steps["train_on_real"]["f1"]
    rows = [["train on real", _pct(real), "", paper.TSTR_F1["MIRAGE-2019"]["train on real"],
             paper.TSTR_F1["CESNET-TLS22-80"]["train on real"]]]
    for m in models:
        f1 = steps[f"tstr:{m}"]["f1"]
        rows.append([display(m), _pct(f1), f"{100 * (np.mean(f1) - np.mean(real)):+.2f}",
                     paper.TSTR_F1["MIRAGE-2019"].get(m, "-"), paper.TSTR_F1["CESNET-TLS22-80"].get(m, "-")])
    header = ["approach", "macro F1 % (mean ± std)", "vs real (points)", "paper MIRAGE-2019", "paper CESNET-TLS22-80"]
    _write_csv(out / "tstr.csv", header, rows)
    return ["## RQ2: train on synthetic, test on real (Random Forest)", "", _table(header, rows), ""]


def _rq3(out: Path, steps: dict, models: list[str]) -> list[str]:
    if "augmentation" not in steps:
        return []
    records = steps["augmentation"]["records"]
    methods = list(dict.fromkeys(r["method"] for r in records))
    fractions = sorted({r["fraction"] for r in records})
    cell = {(m, f): [r["f1"] for r in records if r["method"] == m and r["fraction"] == f] for m in methods for f in fractions}
    rows = [[display(m)] + [_pct(cell[m, f]) for f in fractions] for m in methods]
    header = ["method"] + [f"{100 * f:g} %" for f in fractions]
    _write_csv(out / "augmentation.csv", ["method", "fraction", "seed", "f1", "n_train"],
               [[r["method"], r["fraction"], r["seed"], r["f1"], r["n_train"]] for r in records])
    fig, ax = pyplot().subplots(figsize=(8, 5))
    for m in methods:
        means = [np.mean(cell[m, f]) for f in fractions]
        stds = [np.std(cell[m, f]) for f in fractions]
        ax.errorbar([100 * f for f in fractions], means, yerr=stds, marker="o", capsize=3, label=display(m),
                    linestyle="--" if m == "real-only" or m in names("baseline") else "-")
    if "train_on_real" in steps:
        ax.axhline(np.mean(steps["train_on_real"]["f1"]), color="grey", linestyle=":", label="all real data")
    ax.set_xlabel("kept fraction of the real training flows (%)")
    ax.set_ylabel("macro F1 on the real test split")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, out / "augmentation.png")
    return ["## RQ3: low-data augmentation (macro F1 %, mean ± std over seeds)", "",
            f"Every class topped up to {steps['augmentation']['target_per_class']} flows; generative models trained on "
            "the full training split, SMOTE and Fast Retransmit on the kept flows only.", "",
            _table(header, rows), "", "![augmentation](augmentation.png)", "", f"Paper: {paper.FINDINGS['RQ3']}", ""]


def _memory(row: dict) -> str:
    return f"{row['train_added_mb']:.0f} / {row['gen_added_mb']:.0f}"


def _rq4(out: Path, steps: dict, models: list[str]) -> list[str]:
    kinds = [m for m in models if f"efficiency:{m}" in steps]
    if not kinds:
        return []
    header = ["model", "parameters", "disk MB", "paper protocol: train s/epoch (batch 1)", "gen ms/flow (batch 1)",
              "train/gen MB", "practical: train s/epoch (batch 256)", "gen ms/flow (all at once)", "train/gen MB",
              "paper (GPU): train s/epoch", "gen ms/flow", "disk MB"]
    rows = []
    for m in kinds:
        e = steps[f"efficiency:{m}"]
        p, q = e["paper"], e["practical"]
        ref = paper.EFFICIENCY.get(m, {})
        rows.append([display(m), f"{e['parameters']:,}", f"{e['disk_mb']:.2f}", f"{p['train_s_per_epoch']:.2f}",
                     f"{p['gen_ms_per_flow']:.2f}", _memory(p), f"{q['train_s_per_epoch']:.2f}", f"{q['gen_ms_per_flow']:.3f}",
                     _memory(q),
                     ref.get("train_s_per_epoch", "-"), ref.get("gen_ms_per_flow", "-"), ref.get("disk_mb", "-")])
    _write_csv(out / "efficiency.csv", header, rows)
    first = steps[f"efficiency:{kinds[0]}"]["paper"]
    md = ["## RQ4: efficiency", "",
          f"Paper protocol: {first['train_flows']} training flows ({first['epochs']} epoch timed), generation one flow per call; "
          "practical: training batch 256, generation in one call (batches of 1024). Memory (train/gen MB) is what "
          "the work added to the process's peak RSS on the CPU (allocator peak on a GPU); the whole process, with "
          "Python, torch and the data loaded, held about "
          f"{max(steps[f'efficiency:{m}']['paper']['train_peak_mb'] for m in kinds):.0f} MB at most.", "",
          _table(header, rows), ""]
    modes = [k.split(":", 1)[1] for k in steps if k.startswith("quantization:")]
    if modes:
        qh = ["llama", "size MB", "gen ms/flow (batch)", "gen ms/flow (batch 1)"] + METRIC_NAMES + ["TSTR F1 %", "paper ms/flow", "paper MB"]
        qrows = []
        for mode in modes:
            q = steps[f"quantization:{mode}"]
            ref = paper.EFFICIENCY.get("llama" if mode == "float32" else f"llama {mode}", {})
            qrows.append([mode, f"{q['size_mb']:.2f}", f"{q['gen_ms_per_flow_practical']:.3f}", f"{q['gen_ms_per_flow_batch1']:.2f}"]
                         + [f"{q['fidelity'][n]:.4f}" for n in METRIC_NAMES] + [_pct(q["tstr_f1"]),
                         ref.get("gen_ms_per_flow", "-"), ref.get("disk_mb", "-")])
        _write_csv(out / "quantization.csv", qh, qrows)
        md += ["Post-training int8 quantization of llama (int8-weight-only: torchao; int8-dynamic: torch's dynamic "
               "quantization of the linear layers); size is the serialized weights.", "", _table(qh, qrows), "",
               f"Paper: {paper.FINDINGS['RQ4']}", ""]
    return md


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


def _targets(steps: dict) -> list[str]:
    checks = target_checks(steps)
    if not checks:
        return []
    return ["## Targets", ""] + [f"- {'met' if ok else 'MISSED'}: {what} ({numbers})" for what, ok, numbers in checks] + [""]
