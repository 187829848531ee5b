"""Renders results.json (written by `netsynth benchmark`) as report.md and CSV tables, with the PNGs of `plots`.

A pure renderer: every figure comes from `summary` (means over seeds, differences, target checks) or is a
stored number; this module only formats and arranges them beside the paper's.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path


from netsynth import paper, plots
from netsynth.errors import NetsynthError
from netsynth.fileio import atomic_path
from netsynth.metrics import METRIC_NAMES, METRICS
from netsynth.models.registry import display, names
from netsynth.timing import TIMING_METRICS
from netsynth.summary import (augmentation_cells, efficiency_kinds, fidelity_series, mean_std, one_draw_models,
                              quantization_modes, seed_model_steps, target_checks, tstr_rows)


def _pct(values) -> str:
    m, s = mean_std(values)
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
    provenance = res["dataset"].get("provenance", {})
    compare = not provenance.get("simulated", False)  # the paper's figures mean nothing beside simulated flows
    md = [f"# netsynth benchmark: {res['dataset']['source']}", "", *_data(provenance),
          f"Machine: {'; then '.join(res.get('machines', [res['environment']['machine']]))}; netsynth {res['environment']['netsynth']}, torch "
          f"{res['environment']['torch']}, transformers {res['environment']['transformers']}. Settings: "
          f"{res['settings']['seeds']} seed(s), fractions {res['settings']['fractions']}, epochs "
          f"{res['settings']['epochs'] or 'model defaults'}{' (quick)' if res['settings']['quick'] else ''}.", ""]
    if "split" in steps:
        train, test = steps["split"]["train"], steps["split"]["test"]
        untested = [c for c, k in test.items() if not k]
        md += [f"Split ({'by capture' if steps['split']['grouped'] else 'stratified'}): {sum(train.values())} training "
               f"and {sum(test.values())} test flows, {len(train)} classes (largest training class: {max(train.values())})"
               + (f"; no test flows for {untested} (left out of the fidelity metrics)" if untested else "") + ".", ""]
    md += (_training(steps, models) + _rq1(out, steps, models, res["settings"], compare) + _timing(out, steps, models)
           + _rq2(out, steps, models, res["settings"], compare)
           + _privacy(out, steps, models) + _rq3(out, steps, models, compare) + _rq4(out, steps, models, compare))
    if compare:
        md += _targets(steps, models)
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(md) + "\n")
    return out / "report.md"


def _data(provenance: dict) -> list[str]:
    """Where the flows come from and what their lengths measure, so that no reader mistakes a demo for a finding."""
    lengths = provenance.get("lengths") or "not recorded"
    if provenance.get("simulated"):
        return [f"**Data: SIMULATED.** These flows come from netsynth's built-in demo corpus (`netsynth demo-data`), "
                "not from a real network: the figures below show what netsynth measures, not how the generators fare "
                "on real traffic, so the paper's figures and the targets are not shown beside them. Lengths: "
                f"{lengths}.", ""]
    if not provenance:
        return ["Data: provenance not recorded (results of netsynth 0.1, or a FlowSet not written by `netsynth ingest`); the paper's "
                "figures (MIRAGE-2019, CESNET-TLS22) are shown for orientation only.", ""]
    return [f"Data: real traffic as ingested by netsynth. Lengths: {lengths}. The paper's figures (MIRAGE-2019, "
            "CESNET-TLS22) are beside ours for orientation: they compare directly only on those datasets.", ""]


def _rq1(out: Path, steps: dict, models: list[str], settings: dict, compare: bool) -> list[str]:
    if "floor" not in steps or not models:
        return []
    series = [("real vs real (floor)" if name == "floor" else display(name), macro) for name, macro in fidelity_series(steps, models)]
    rows = [[name] + [f"{macro[n]:.4f}" for n in METRIC_NAMES] for name, macro in series]
    _write_csv(out / "fidelity.csv", ["model"] + METRIC_NAMES, rows)
    plots.fidelity_radar(out / "fidelity_radar.png", [("real vs real", series[0][1])] + series[1:], reference="real vs real")
    return ["## RQ1: fidelity (macro over classes, lower is better)", "",
            "Synthetic flows (the training split's class counts) against the real test split; leakage against the "
            "training split. The floor puts the real training split (the class counts of every synthetic set) in the "
            "place of the synthetic flows; its leakage is the overlap of the training and test splits. Histogram bins: "
            + ("exact signed lengths." if settings.get("bin_width", 1) <= 1 else f"{settings['bin_width']} bytes wide."), "",
            _table(["model"] + METRIC_NAMES, rows), "",
            *[f"- `{m.name}`: {m.description}" for m in METRICS], "", "![fidelity radar](fidelity_radar.png)", "",
            *_paper_line("RQ1", compare)]


def _timing(out: Path, steps: dict, models: list[str]) -> list[str]:
    """Timing fidelity (benchmark --timing): log-IAT and duration JSDs beside the real-vs-real floor."""
    if "timing_floor" not in steps:
        return []
    names = list(TIMING_METRICS)
    rows = [["real vs real (floor)"] + [f"{steps['timing_floor']['macro'][n]:.4f}" for n in names]]
    rows += [[display(m)] + [f"{steps[f'fidelity:{m}']['timing'][n]:.4f}" for n in names]
             for m in models if "timing" in steps.get(f"fidelity:{m}", {})]
    _write_csv(out / "timing.csv", ["model"] + names, rows)
    md = ["## Timing fidelity (macro over classes, lower is better)", "",
          "llama and mamba learn inter-arrival times with a head of their own; the other kinds draw them from the "
          "empirical per-class timing model (class, packet position, direction pair; netsynth.timing). The floor: "
          "the real training split's timing against the test split's.", "", _table(["model"] + names, rows), ""]
    sources = [("train on real", "train_on_real")] + [(display(m), f"tstr:{m}") for m in models]
    f1 = [[name, _pct(steps[key]["f1"][:1]), _pct([steps[key]["f1_timing"]])]
          for name, key in sources if "f1_timing" in steps.get(key, {})]
    if not f1:
        return md
    _write_csv(out / "tstr_timing.csv", ["approach", "f1_lengths", "f1_lengths_and_timing"], f1)
    return md + ["TSTR macro F1 (%, seed 0) of the forest on signed lengths alone and on lengths with each packet's "
                 "log inter-arrival time:", "", _table(["trained on", "lengths", "lengths and timing"], f1), ""]


def _paper_line(rq: str, compare: bool) -> list[str]:
    return [f"Paper: {paper.FINDINGS[rq]}", ""] if compare else []


def _training(steps: dict, models: list[str]) -> list[str]:
    """How long each model trained: epochs, optimizer steps (what diffusion needs), the best validation loss."""
    rows = []
    for m in models:
        for name, t in [(display(m), steps.get(f"train:{m}", {}))] + \
                [(f"{display(m)}, seed {k.rsplit('seed', 1)[1]}", steps[k]["train"]) for k in seed_model_steps(steps, m)]:
            if t.get("epochs_run"):
                best = t.get("history", {}).get("best_val_loss")
                rows.append([name, t.get("train_options", {}).get("lr", "-"), t["epochs_run"], t.get("optimizer_steps", "-"),
                             f"{best:.4f}" if best else "-", f"{t['train_seconds']:.0f}", t.get("machine", "-")])
    if not rows:
        return []
    return ["## Training", "", "Early stopping on the validation loss (the best epoch's weights are kept).", "",
            _table(["model", "peak lr", "epochs", "optimizer steps", "best validation loss", "seconds", "machine"], rows), ""]


def _rq2(out: Path, steps: dict, models: list[str], settings: dict, compare: bool) -> list[str]:
    if "train_on_real" not in steps:
        return []
    one_draw = one_draw_models(steps, models, settings)  # marked with a *
    rows = [[display(r["approach"]) + (" *" if r["approach"] in one_draw else ""), _pct(r["f1"]),
             "" if r["delta"] is None else f"{r['delta']:+.2f}", "" if r["ratio"] is None else f"{r['ratio']:.2f}",
             "-" if r["class_fidelity"] is None else f"{100 * r['class_fidelity']:.1f}", r["models"] or "",
             *(r["paper"] if compare else [])]
            for r in tstr_rows(steps, models)]
    header = (["approach", "macro F1 % (mean ± std)", "vs real (points)", "ratio to real", "class fidelity %",
               "trained models"]
              + ([f"paper {d}" for d in paper.TSTR_F1] if compare else []))
    _write_csv(out / "tstr.csv", header, rows)
    return ["## RQ2: train on synthetic, test on real (Random Forest)", "",
            "Class fidelity: the share of flows that a forest trained on the real training flows labels with the "
            "class they were generated for (for train on real: the real test flows' own share, its accuracy), "
            "the mean over the trained models. Each seed trains a model of its own and scores a draw of it with a "
            "forest of its own; where fewer models than seeds were trained (`--one-model`, the Markov chain, whose "
            "counts no seed changes, or a run stopped before them), the seeds score draws of one model.", "",
            _table(header, rows), ""] + ([
            "\\* Scored by an earlier netsynth: the seeds trained on subsets of one pool of synthetic flows, which held "
            "fewer than one training set per seed, so the mean is largely one draw's (each seed now scores a draw of "
            "its own).", ""] if one_draw else [])


def _privacy(out: Path, steps: dict, models: list[str]) -> list[str]:
    audited = [m for m in models if f"privacy:{m}" in steps]
    if not audited:
        return []
    pct = lambda x: "-" if x is None else f"{100 * x:.1f}"  # noqa: E731
    rows = []
    for m in audited:
        p = steps[f"privacy:{m}"]
        rows.append([display(m), f"{pct(p['exact_copies'])} ({pct(p['exact_copies_base_rate'])})",
                     f"{pct(p['exact_copies_long'])} ({pct(p['exact_copies_long_base_rate'])})",
                     f"{p['dcr_train_median']:.0f} / {p['dcr_test_median']:.0f}", pct(p["dcr_closer_to_train"]),
                     f"{p['black_box']['auc']:.3f}", pct(p["black_box"]["tpr_at_1pct_fpr"]),
                     f"{p['white_box']['auc']:.3f}" if "white_box" in p else "-"])
    header = ["model", "exact copies % (real test flows)", "of 4+ packets % (real)", "median DCR train / test (bytes)",
              "closer to train %", "black-box MIA AUC", "TPR at 1 % FPR", "white-box MIA AUC"]
    _write_csv(out / "privacy.csv", header, rows)
    return ["## Privacy: what the synthetic flows reveal about the training flows", "",
            "Exact copies: synthetic flows that occur verbatim (with their class) in the training split, beside the "
            "share of real test flows that do (short flows repeat by nature). DCR: L1 distance over the signed "
            "lengths to the nearest training and test flow of the same class (training side subsampled to the test "
            "side's size); 50 % closer to training is what a model that learned the distribution, not the records, "
            "gives. Membership inference (training flows against as many test flows; 0.5 = the attacker learns "
            "nothing): black box, Hilprecht et al. 2019 (distance to the nearest synthetic flow); white box, Yeom et "
            "al. 2018 (the model's likelihood of the flow).", "", _table(header, rows), ""]


def _rq3(out: Path, steps: dict, models: list[str], compare: bool) -> list[str]:
    if "augmentation" not in steps:
        return []
    records = steps["augmentation"]["records"]
    methods, fractions, cell = augmentation_cells(records)
    rows = [[display(m)] + [_pct(cell[m, f]) for f in fractions] for m in methods]
    header = ["method"] + [f"{100 * f:g} %" for f in fractions]
    _write_csv(out / "augmentation.csv", ["method", "fraction", "seed", "f1", "n_train"],
               [[r["method"], r["fraction"], r["seed"], r["f1"], r["n_train"]] for r in records])
    curves = [(display(m), [mean_std(cell[m, f])[0] for f in fractions], [mean_std(cell[m, f])[1] for f in fractions],
               m == "real-only" or m in names("baseline")) for m in methods]
    full = mean_std(steps["train_on_real"]["f1"])[0] if "train_on_real" in steps else None
    plots.augmentation_curves(out / "augmentation.png", curves, fractions, full)
    return ["## RQ3: low-data augmentation (macro F1 %, mean ± std over seeds)", "",
            f"Every class topped up to {steps['augmentation']['target_per_class']} flows; generative models trained on "
            "the full training split, SMOTE and Fast Retransmit on the kept flows only.", "",
            _table(header, rows), "", "![augmentation](augmentation.png)", "", *_paper_line("RQ3", compare)]


def _memory(row: dict) -> str:
    return f"{row['train_added_mb']:.0f} / {row['gen_added_mb']:.0f}"


def _median(x) -> float:
    """A measured figure: {"median", "min", "max"} of its repeats, or one number (results written before 0.2)."""
    return x["median"] if isinstance(x, dict) else x


def _spread(x) -> float:
    return (x["max"] - x["min"]) / x["median"] if isinstance(x, dict) and x["median"] > 0 else 0.0


def _rq4(out: Path, steps: dict, models: list[str], compare: bool) -> list[str]:
    kinds = efficiency_kinds(steps, models)
    if not kinds:
        return []
    header = ["model", "parameters", "disk MB", "paper protocol: train s/epoch (batch 1)", "gen ms/flow (one per call)",
              "train/gen MB", "practical: train s/epoch (batch 256)", "gen ms/flow (all in one call)", "train/gen MB"]
    header += ["paper (GPU): train s/epoch", "gen ms/flow", "disk MB"] if compare else []
    rows, figures = [], {}
    for m in kinds:
        e = steps[f"efficiency:{m}"]
        p, q = e["paper"], e["practical"]
        figures.update({f"{display(m)}, paper protocol, training": p["train_s_per_epoch"],
                        f"{display(m)}, paper protocol, generation": p["gen_ms_per_flow"],
                        f"{display(m)}, practical, training": q["train_s_per_epoch"],
                        f"{display(m)}, practical, generation": q["gen_ms_per_flow"]})
        ref = paper.EFFICIENCY.get(m, {})
        rows.append([display(m), f"{e['parameters']:,}", f"{e['disk_mb']:.2f}", f"{_median(p['train_s_per_epoch']):.2f}",
                     f"{_median(p['gen_ms_per_flow']):.2f}", _memory(p), f"{_median(q['train_s_per_epoch']):.2f}",
                     f"{_median(q['gen_ms_per_flow']):.3f}", _memory(q)]
                    + ([ref.get("train_s_per_epoch", "-"), ref.get("gen_ms_per_flow", "-"), ref.get("disk_mb", "-")]
                       if compare else []))
    _write_csv(out / "efficiency.csv", header, rows)
    first = steps[f"efficiency:{kinds[0]}"]
    worst = max(figures, key=lambda name: _spread(figures[name]))
    md = ["## RQ4: efficiency", "",
          f"Paper protocol: {first['paper']['train_flows']} training flows of the {first.get('classes', 5)} largest "
          "classes (parameters counted for those classes), training at batch 1, generation one flow per call; "
          "practical: the same flows at training batch 256, generation in one call (batches of 1024). Every training "
          "and every generation ran in a fresh process; times are medians of "
          f"{first['paper']['epochs']} epochs and {first['paper'].get('repeats', 1)} generation runs"
          + (f" (the largest spread, (max - min) / median: {100 * _spread(figures[worst]):.0f} %, {worst})"
             if _spread(figures[worst]) else "")
          + ". Memory (train/gen MB) is the peak the work added to that process after its imports and data: "
          "resident memory on the CPU, the allocator's peak on a GPU.", "", _table(header, rows), ""]
    modes = quantization_modes(steps)
    if modes:
        qh = (["llama", "size MB", "gen ms/flow (all in one call)", "gen ms/flow (one per call)"] + METRIC_NAMES
              + ["TSTR F1 %"] + (["paper ms/flow", "paper MB"] if compare else []))
        qrows = []
        for mode in modes:
            q = steps[f"quantization:{mode}"]
            ref = paper.EFFICIENCY.get("llama" if mode == "float32" else f"llama {mode}", {})
            qrows.append([mode, f"{q['size_mb']:.2f}", f"{_median(q['gen_ms_per_flow_practical']):.3f}",
                          f"{_median(q['gen_ms_per_flow_batch1']):.2f}"]
                         + [f"{q['fidelity'][n]:.4f}" for n in METRIC_NAMES] + [_pct(q["tstr_f1"])]
                         + ([ref.get("gen_ms_per_flow", "-"), ref.get("disk_mb", "-")] if compare else []))
        _write_csv(out / "quantization.csv", qh, qrows)
        full = steps[f"quantization:{modes[0]}"].get("parameters")
        md += ["Post-training int8 quantization of the llama trained on the whole training split"
               + (f" ({full:,} parameters: every class, unlike the table above)" if full else "")
               + " (int8-weight-only: torchao; int8-dynamic: torch's dynamic quantization of the linear layers); size "
               "is the serialized weights; generation on the CPU, where the int8 kernels are, each in a fresh process.",
               "", _table(qh, qrows), "", *_paper_line("RQ4", compare)]
    return md


def _targets(steps: dict, models: list[str]) -> list[str]:
    checks = target_checks(steps, models)
    if not checks:
        return []
    return ["## Targets", ""] + [f"- {'met' if ok else 'MISSED'}: {what} ({numbers})" for what, ok, numbers in checks] + [""]
