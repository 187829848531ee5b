"""The privacy-utility trade-off (issue 12, item 3): each kind trained without DP and with DP at each epsilon,
then per model the synthetic flows' TSTR (3 forest seeds), class fidelity, the six metrics beside the floor and
every figure of the privacy audit (white box where the model has a likelihood).

    python benchmarks/privacy_utility.py run --train train.parquet --test test.parquet -o DIR
        [--kinds llama,markov --epsilons 1,4,16 --epochs E --dp-epochs 30 --dp-batch-size 1024 --device auto]
        [--add]                                            # keep DIR's rows of other kinds (same split)
    python benchmarks/privacy_utility.py render DIR        # privacy_utility.md, .csv and .png from DIR/results.json

Synthetic flows: the training split's class counts, seed 0. Without DP llama trains at its defaults (early
stopping on a held-out tenth); with DP every flow is trained on for --dp-epochs at --dp-batch-size (DP-SGD's
noise shrinks relative to the gradient as batches grow: Abadi et al. 2016; De et al. 2022). The Markov chain
releases its noisy counts once (netsynth.models.markov).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

import netsynth
from netsynth import FlowSet, privacy
from netsynth.experiment import environment
from netsynth.fileio import atomic_path
from netsynth.metrics import METRIC_NAMES, fidelity, real_floor
from netsynth.models.registry import KINDS
from netsynth.tasks.tstr import class_fidelity, forest, forest_f1

SEEDS = (0, 1, 2)


def measure(name: str, model, train: FlowSet, test: FlowSet, real_forest, seconds: float, device: str) -> dict:
    synth = model.sample(train.class_counts(), seed=0, **({"device": device} if "device" in model.sample_options else {}))
    likelihood = getattr(model, "log_likelihood", None)
    row = {"model": name, "kind": model.kind, "train_seconds": round(seconds, 1), "machine": environment()["machine"],
           "tstr_f1": [forest_f1(synth, test, seed=s) for s in SEEDS],
           "class_fidelity": class_fidelity(real_forest, synth),
           "fidelity": fidelity(test, synth, train=train)["macro"],
           "privacy": privacy.audit(train, test, synth, log_likelihood=likelihood)}
    row["dp"] = getattr(model, "privacy_", None)
    print(f"{name}: TSTR {100 * np.mean(row['tstr_f1']):.1f} %, black-box AUC {row['privacy']['black_box']['auc']:.3f}"
          + (f", white-box AUC {row['privacy']['white_box']['auc']:.3f}" if likelihood else "") + f", {seconds:.0f} s",
          flush=True)
    return row


def run(args):
    train, test = FlowSet.read(args.train), FlowSet.read(args.test)
    test = test.select(list(test.present_counts()))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    kinds = args.kinds.split(",")
    real_forest = forest(train, seed=0)
    results = {"train_on_real_f1": [forest_f1(train, test, seed=s) for s in SEEDS],
               "real_class_fidelity": class_fidelity(real_forest, test),
               "floor": real_floor(test, train)["macro"], "settings": vars(args), "rows": []}
    if args.add:  # the same split, or the rows would not compare
        kept = json.loads((out / "results.json").read_text())
        if not np.allclose(kept["train_on_real_f1"], results["train_on_real_f1"]):
            raise SystemExit(f"{out}/results.json: another split (train on real {kept['train_on_real_f1']}); drop --add")
        results["rows"] = [r for r in kept["rows"] if row_kind(r) not in kinds]
        results["settings"] = [*always_list(kept["settings"]), vars(args)]
    for kind in kinds:
        neural = KINDS[kind].trains  # trained in epochs, on a device
        runs = [(kind, {"epochs": args.epochs} if neural else {})] + [
            (f"{kind}, epsilon {e:g}", {"dp_epsilon": e, **({"epochs": args.dp_epochs, "batch_size": args.dp_batch_size}
                                                           if neural else {})})
            for e in map(float, args.epsilons.split(","))]
        for name, options in runs:
            t0 = time.perf_counter()
            model = netsynth.create(kind).fit(train, **({"device": args.device} if neural else {}), **options)
            results["rows"].append(measure(name, model, train, test, real_forest, time.perf_counter() - t0, args.device))
            with atomic_path(out / "results.json") as tmp:  # an interrupted run leaves the last whole file
                tmp.write_text(json.dumps(results, indent=1))


def row_kind(row: dict) -> str:
    return row.get("kind", row["model"].split(",")[0])  # rows written before "kind" was kept: llama's


def always_list(settings) -> list:
    return settings if isinstance(settings, list) else [settings]


def render(folder: Path):
    from netsynth.plots import pyplot, save_png

    res = json.loads((folder / "results.json").read_text())
    kinds = list(dict.fromkeys(row_kind(r) for r in res["rows"]))
    res["rows"] = sorted(res["rows"], key=lambda r: (kinds.index(row_kind(r)), r["dp"] is not None,
                                                     r["dp"]["epsilon"] if r["dp"] else 0))
    real = float(np.mean(res["train_on_real_f1"]))
    head = ["model", "epsilon", "TSTR F1 %", "/ real", "class fidelity %", *METRIC_NAMES, "copies %",
            "copies 4+ %", "closer to train %", "black-box AUC", "black-box TPR@1%", "white-box AUC", "white-box TPR@1%"]
    rows = []
    for r in res["rows"]:
        p, f1 = r["privacy"], float(np.mean(r["tstr_f1"]))
        rows.append([r["model"], f"{r['dp']['epsilon']:.2f}" if r["dp"] else "-", f"{100 * f1:.1f}", f"{f1 / real:.2f}",
                     f"{100 * r['class_fidelity']:.1f}", *(f"{r['fidelity'][m]:.3f}" for m in METRIC_NAMES),
                     f"{100 * p['exact_copies']:.1f}", f"{100 * p['exact_copies_long']:.1f}",
                     f"{100 * p['dcr_closer_to_train']:.1f}", f"{p['black_box']['auc']:.3f}",
                     f"{p['black_box']['tpr_at_1pct_fpr']:.3f}",
                     *((f"{p['white_box']['auc']:.3f}", f"{p['white_box']['tpr_at_1pct_fpr']:.3f}") if "white_box" in p
                       else ("-", "-"))])
    base = res["rows"][0]["privacy"]
    rows.append(["real test flows", "-", f"{100 * real:.1f} (train on real)", "1", f"{100 * res['real_class_fidelity']:.1f}",
                 *(f"{res['floor'][m]:.3f}" for m in METRIC_NAMES), f"{100 * base['exact_copies_base_rate']:.1f}",
                 f"{100 * base['exact_copies_long_base_rate']:.1f}", "-", "-", "-", "-", "-"])
    (folder / "privacy_utility.csv").write_text("\n".join(",".join(c.replace(",", ";") for c in r) for r in [head, *rows]) + "\n")
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    (folder / "privacy_utility.md").write_text("\n".join(md) + "\n")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, style in zip(kinds, ("-", "--", "-.")):
        rows = [r for r in res["rows"] if row_kind(r) == kind]
        plain, dp = [r for r in rows if not r["dp"]], [r for r in rows if r["dp"]]
        eps = [r["dp"]["epsilon"] for r in dp]
        figures = [("TSTR / train on real", "s", lambda r: np.mean(r["tstr_f1"]) / real),
                   ("black-box AUC", "o", lambda r: r["privacy"]["black_box"]["auc"])]
        if "white_box" in rows[0]["privacy"]:
            figures.append(("white-box AUC", "^", lambda r: r["privacy"]["white_box"]["auc"]))
        for (label, marker, value), color in zip(figures, ("C0", "C1", "C2")):
            ax.plot(eps, [value(r) for r in dp], marker + style, color=color, label=f"{kind}: {label}")
            if plain:
                ax.axhline(value(plain[0]), ls=":", color=color, lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("epsilon (dotted: without DP)")
    ax.legend(fontsize=8)
    save_png(fig, folder / "privacy_utility.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--train", required=True)
    r.add_argument("--test", required=True)
    r.add_argument("-o", "--output", required=True)
    r.add_argument("--kinds", default="llama,markov", help="kinds that train with DP, in netsynth's names")
    r.add_argument("--add", action="store_true", help="keep the folder's rows of the other kinds")
    r.add_argument("--epsilons", default="1,4,16")
    r.add_argument("--epochs", type=int, default=None, help="llama without DP [default: its own, to convergence]")
    r.add_argument("--dp-epochs", type=int, default=30)
    r.add_argument("--dp-batch-size", type=int, default=1024)
    r.add_argument("--device", default="auto")
    sub.add_parser("render").add_argument("folder", type=Path)
    args = parser.parse_args()
    run(args) if args.command == "run" else render(args.folder)
