"""What DP-SGD costs llama in utility, one setting at a time: train with a budget, then TSTR (seed 0) and the
paper's six metrics of the synthetic flows (the training split's class counts, seed 0) against the test split.

    python benchmarks/dp_utility.py --train train.parquet --test test.parquet --epsilon 4 \\
        [--epochs 30 --batch-size 1024 --lr 1e-3 --set hidden_size=64 --set num_hidden_layers=2]
        [--public other.parquet ...] [--via tables --per-class 400]

A very large --epsilon (1e6) leaves DP-SGD's clipping and sampling with almost no noise: it separates what
the noise costs from what the clipping and the step budget cost. --public: pre-training on public flows (other
datasets, other classes; trained without DP at the kind's defaults), then DP-SGD on the private ones from those
weights (Li et al. 2022, "Large Language Models Can Be Strong Differentially Private Learners": pre-training is
what makes DP fine-tuning work). The guarantee covers the private training flows.
--via tables: no DP-SGD; the tables kind released once at --epsilon, --per-class flows of every class drawn from it,
and the kind trained on those at its defaults. A model trained on the output of a DP release is post-processing
of it and keeps its (epsilon, delta).
"""
import argparse
import json
import time

import netsynth
from netsynth import FlowSet
from netsynth.codecs.tokens import SPECIALS
from netsynth.metrics import fidelity
from netsynth.tasks.tstr import forest_f1


def warm_start(model, public):
    """Let `model` build its module from the weights of `public` (a token model of other classes): every tensor
    of the same shape, and of the embedding and output layer the rows of <PAD>, <EOS>, <UNK> and the lengths
    (the class rows stay as initialised). Both use the full vocabulary of the same max_size."""
    build = model._build

    def _build():
        module = build()
        source = public.module_.state_dict()
        first, public_first = model.codec_.first_length, public.codec_.first_length
        for name, weight in module.state_dict().items():
            if weight.shape == source[name].shape:
                weight.copy_(source[name])
            else:
                weight[:SPECIALS] = source[name][:SPECIALS]
                weight[first:] = source[name][public_first:]
        return module
    model._build = _build


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--kind", default="llama")
    parser.add_argument("--epsilon", type=float, required=True)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--public", nargs="+", help="FlowSets to pre-train on without DP")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a model setting")
    parser.add_argument("--via", choices=["tables"], help="train on the flows of this kind's DP release instead")
    parser.add_argument("--per-class", type=int, default=400, help="with --via: flows of each class drawn")
    args = parser.parse_args()
    if args.public and args.kind not in ("llama", "mamba"):
        parser.error("--public applies to the token models (llama, mamba)")
    train, test = FlowSet.read(args.train), FlowSet.read(args.test)
    test = test.select(list(test.present_counts()))
    settings = {k: int(v) if v.isdigit() else v for k, v in (item.split("=", 1) for item in args.set)}
    options = {"dp_epsilon": args.epsilon, "epochs": args.epochs, "batch_size": args.batch_size, "verbose": True,
               **({"lr": args.lr} if args.lr else {})}
    t0 = time.perf_counter()
    model = netsynth.create(args.kind, **settings)
    if args.public:
        public = FlowSet.concat([FlowSet.read(f) for f in args.public])
        warm_start(model, netsynth.create(args.kind, **settings).fit(public, verbose=True))
    if args.via:
        release = netsynth.create(args.via).fit(train, dp_epsilon=args.epsilon, seed=0)
        lr = {"lr": args.lr} if args.lr else {}
        model.fit(release.sample(n_per_class=args.per_class, seed=1), verbose=True, **lr)
        options, dp = {"via": args.via, "per_class": args.per_class, **lr}, release.privacy_
    else:
        model.fit(train, **options)
        dp = model.privacy_
    seconds = time.perf_counter() - t0
    synth = model.sample(train.class_counts(), seed=0)
    real_f1, synth_f1 = forest_f1(train, test, seed=0), forest_f1(synth, test, seed=0)
    print(json.dumps({"settings": settings, "options": options, "public": args.public, "parameters": model.n_parameters,
                      "train_seconds": round(seconds), "final_train_loss": round(model.history_["train_loss"][-1], 4),
                      "noise_multiplier": round(dp["noise_multiplier"], 3), "steps": dp.get("steps"),
                      "epsilon": round(dp["epsilon"], 3), "tstr_f1": round(100 * synth_f1, 1),
                      "train_on_real_f1": round(100 * real_f1, 1), "ratio": round(synth_f1 / real_f1, 2),
                      "fidelity": {k: round(v, 3) for k, v in fidelity(test, synth, train=train)["macro"].items()}}))


if __name__ == "__main__":
    main()
