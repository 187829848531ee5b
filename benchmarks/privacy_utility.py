"""The privacy-utility trade-off of llama (issue 12, item 3): trained without DP and with DP-SGD at each epsilon,
then per model the synthetic flows' TSTR (3 forest seeds), class fidelity, the six metrics beside the floor and
every figure of the privacy audit (white box included).

    python benchmarks/privacy_utility.py run --train train.parquet --test test.parquet -o DIR
        [--epsilons 1,4,16 --epochs E --dp-epochs 30 --dp-batch-size 1024 --device auto]
    python benchmarks/privacy_utility.py render DIR        # privacy_utility.md, .csv and .png from DIR/results.json

Synthetic flows: the training split's class counts, seed 0. Without DP llama trains at its defaults (early
stopping on a held-out tenth); with DP every flow is trained on for --dp-epochs at --dp-batch-size (DP-SGD's
noise shrinks relative to the gradient as batches grow: Abadi et al. 2016; De et al. 2022).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

import netsynth
from netsynth import FlowSet, privacy
from netsynth.metrics import METRIC_NAMES, fidelity, real_floor
from netsynth.tasks.tstr import class_fidelity, forest, forest_f1

SEEDS = (0, 1, 2)


def measure(name: str, model, train: FlowSet, test: FlowSet, real_forest, seconds: float, device: str) -> dict:
    synth = model.sample(train.class_counts(), seed=0, device=device)
    row = {"model": name, "train_seconds": round(seconds, 1),
           "tstr_f1": [forest_f1(synth, test, seed=s) for s in SEEDS],
           "class_fidelity": class_fidelity(real_forest, synth),
           "fidelity": fidelity(test, synth, train=train)["macro"],
           "privacy": privacy.audit(train, test, synth, log_likelihood=model.log_likelihood)}
    row["dp"] = getattr(model, "privacy_", None)
    print(f"{name}: TSTR {100 * np.mean(row['tstr_f1']):.1f} %, black-box AUC {row['privacy']['black_box']['auc']:.3f}, "
          f"white-box AUC {row['privacy']['white_box']['auc']:.3f}, {seconds:.0f} s", flush=True)
    return row


def run(args):
    train, test = FlowSet.read(args.train), FlowSet.read(args.test)
    test = test.select(list(test.present_counts()))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    real_forest = forest(train, seed=0)
    results = {"train_on_real_f1": [forest_f1(train, test, seed=s) for s in SEEDS],
               "real_class_fidelity": class_fidelity(real_forest, test),
               "floor": real_floor(test, train)["macro"], "settings": vars(args), "rows": []}
    runs = [("llama", {"epochs": args.epochs})] + [(f"llama, epsilon {e:g}", {"dp_epsilon": e, "epochs": args.dp_epochs,
                                                         "batch_size": args.dp_batch_size})
                              for e in map(float, args.epsilons.split(","))]
    for name, options in runs:
        t0 = time.perf_counter()
        model = netsynth.create("llama").fit(train, device=args.device, **options)
        results["rows"].append(measure(name, model, train, test, real_forest, time.perf_counter() - t0, args.device))
        (out / "results.json").write_text(json.dumps(results, indent=1))


def render(folder: Path):
    from netsynth.plots import pyplot, save_png

    res = json.loads((folder / "results.json").read_text())
    res["rows"] = res["rows"][:1] + sorted(res["rows"][1:], key=lambda r: r["dp"]["epsilon"])
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
                     f"{p['black_box']['tpr_at_1pct_fpr']:.3f}", f"{p['white_box']['auc']:.3f}",
                     f"{p['white_box']['tpr_at_1pct_fpr']:.3f}"])
    base = res["rows"][0]["privacy"]
    rows.append(["real test flows", "-", f"{100 * real:.1f} (train on real)", "1", f"{100 * res['real_class_fidelity']:.1f}",
                 *(f"{res['floor'][m]:.3f}" for m in METRIC_NAMES), f"{100 * base['exact_copies_base_rate']:.1f}",
                 f"{100 * base['exact_copies_long_base_rate']:.1f}", "-", "-", "-", "-", "-"])
    (folder / "privacy_utility.csv").write_text("\n".join(",".join(c.replace(",", ";") for c in r) for r in [head, *rows]) + "\n")
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    (folder / "privacy_utility.md").write_text("\n".join(md) + "\n")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    dp = [r for r in res["rows"] if r["dp"]]
    eps = [r["dp"]["epsilon"] for r in dp]
    for key, label in (("black_box", "black-box AUC"), ("white_box", "white-box AUC")):
        ax.plot(eps, [r["privacy"][key]["auc"] for r in dp], "o-", label=label)
        ax.axhline(res["rows"][0]["privacy"][key]["auc"], ls=":", color=ax.lines[-1].get_color())
    ax.plot(eps, [np.mean(r["tstr_f1"]) / real for r in dp], "s-", label="TSTR / train on real")
    ax.axhline(np.mean(res["rows"][0]["tstr_f1"]) / real, ls=":", color=ax.lines[-1].get_color())
    ax.set_xscale("log")
    ax.set_xlabel("epsilon (dotted: llama without DP)")
    ax.legend(fontsize=8)
    save_png(fig, folder / "privacy_utility.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--train", required=True)
    r.add_argument("--test", required=True)
    r.add_argument("-o", "--output", required=True)
    r.add_argument("--epsilons", default="1,4,16")
    r.add_argument("--epochs", type=int, default=None, help="llama without DP [default: its own, to convergence]")
    r.add_argument("--dp-epochs", type=int, default=30)
    r.add_argument("--dp-batch-size", type=int, default=1024)
    r.add_argument("--device", default="auto")
    sub.add_parser("render").add_argument("folder", type=Path)
    args = parser.parse_args()
    run(args) if args.command == "run" else render(args.folder)
