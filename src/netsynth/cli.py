"""The `netsynth` command: parses arguments, calls the library, prints results. No logic of its own."""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
import rich.progress
from rich.table import Table

from netsynth.errors import NetsynthError
from netsynth.models.options import NetsynthNote

default_showwarning = warnings.showwarning

console = Console(stderr=True, soft_wrap=True, emoji=False)  # long lines are not broken in logs and pipes
out = Console(soft_wrap=True, emoji=False)  # ":llama:" in a step or file name stays text


def track(iterable, total: int, what: str):
    """rich's progress bar over `iterable`, on stderr (piped output stays clean) and on a terminal only."""
    return rich.progress.track(iterable, description=what, total=total, console=console, transient=True,
                               disable=not console.is_terminal)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="netsynth")
def cli():
    """netsynth: class-conditioned generative models of network flows, and how good they are."""


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="FlowSet Parquet file to write.")
@click.option("--packets", "n_packets", default=10, show_default=True, help="Packets kept per flow (N).")
@click.option("--keep-empty", is_flag=True, help="Keep zero-payload packets (bare SYN/ACK/FIN).")
@click.option("--max-size", default=1500, show_default=True, help="Payloads above this are clipped to it (and counted).")
@click.option("--label-from", default=None, metavar="folder|ndpi|column:NAME|map:FILE.csv",
              help="Where labels come from [default: folder for captures, BF_label for MIRAGE, APP for CESNET].")
@click.option("--sequence-column", default=None, help="Table column of signed lengths (+ upstream, - downstream).")
@click.option("--size-column", default=None, help="Table column of payload sizes (with --direction-column).")
@click.option("--direction-column", default=None, help="Table column of directions (> 0 upstream).")
@click.option("--group-column", default=None, help="Table column naming each flow's capture/session, for group splits.")
@click.option("--iat-column", default=None, help="Table column of per-packet inter-arrival times in seconds.")
@click.option("--timestamp-column", default=None, help="Table column of per-packet times in seconds (instead of --iat-column).")
@click.option("--protocol-column", default=None, help="Table column of each flow's transport protocol (6/17, TCP/UDP).")
@click.option("--port-column", default=None, help="Table column of each flow's server port (with --protocol-column).")
@click.option("--min-flows", default=1, show_default=True, help="Drop classes with fewer flows.")
@click.option("--workers", default=None, type=int, help="Parallel capture readers [default: one per core].")
def ingest(inputs, output, n_packets, keep_empty, max_size, label_from, sequence_column, size_column,
           direction_column, group_column, iat_column, timestamp_column, protocol_column, port_column, min_flows,
           workers):
    """Read captures, MIRAGE JSON, CESNET or sequence tables into one FlowSet (Parquet)."""
    from netsynth.ingest import IngestOptions, TableColumns, ingest as run_ingest

    options = IngestOptions(n_packets=n_packets, keep_empty=keep_empty, max_size=max_size)
    columns = TableColumns(sequence=sequence_column, size=size_column, direction=direction_column, group=group_column,
                           iat=iat_column, timestamp=timestamp_column, protocol=protocol_column, port=port_column)
    flows, report = run_ingest(inputs, options, label_from=label_from, columns=columns, min_flows=min_flows,
                               workers=workers, progress=track)
    flows.write(output)
    for path, reason in report.skipped:
        console.print(f"[yellow]skipped[/] {escape(path)}: {escape(reason)}")
    for path, damage in report.partial:
        console.print(f"[yellow]partly read[/] {escape(path)}: {escape(damage)}")
    small = report.dropped_small_classes
    partly = f" ({len(report.partial)} partly)" if report.partial else ""
    out.print(f"read {len(report.inputs_read)} inputs{partly}, skipped {len(report.skipped)}; "
              f"kept {report.flows_kept} flows in {len(flows.classes)} classes; dropped {report.dropped_empty} empty, "
              f"{report.dropped_unlabeled} unlabeled, {sum(small.values())} in small classes"
              + (f" ({', '.join(f'{c}: {k}' for c, k in small.items())})" if small else "")
              + f"; clipped {report.packets_clipped} packets above {max_size} bytes")
    out.print(f"wrote {output}")


@cli.command()
@click.argument("flowset", type=click.Path(dir_okay=False))
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write length and size histograms (PNG).")
def inspect(flowset, plot):
    """Classes, counts, flow lengths and sizes of a FlowSet."""
    from netsynth.flowstats import class_summary
    from netsynth.plots import flowset_overview
    from netsynth.flows import FlowSet

    flows = FlowSet.read(flowset)
    rows = class_summary(flows)
    table = Table(title=f"{flowset}: {len(flows)} flows, {len(flows.classes)} classes, N={flows.n_packets}"
                        + (f", {len(set(flows.group.tolist()))} groups" if flows.group is not None else ""))
    for col in ("class", "flows", "share", "mean length", "mean up bytes", "mean down bytes", "distinct sequences"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for r in rows:
        table.add_row(r["class"], str(r["flows"]), f"{r['share']:.1%}", f"{r['mean_length']:.2f}",
                      f"{r['mean_up']:.0f}", f"{r['mean_down']:.0f}", str(r["distinct"]))
    out.print(table)
    lengths = flows.length
    hist = "  ".join(f"{k}:{int((lengths == k).sum())}" for k in range(1, flows.n_packets + 1))
    out.print(f"flow length histogram  {hist}")
    if plot:
        flowset_overview(flows, plot)
        out.print(f"wrote {plot}")


@cli.command("demo-data")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--flows-per-class", default=60, show_default=True)
@click.option("--files-per-class", default=10, show_default=True)
@click.option("--seed", default=0, show_default=True)
def demo_data(out_dir, flows_per_class, files_per_class, seed):
    """Write the built-in SIMULATED corpus: pcap files for a handful of application profiles."""
    from netsynth.demo import write_demo_data

    if flows_per_class < 1 or files_per_class < 1:
        raise NetsynthError("--flows-per-class and --files-per-class must be at least 1")
    counts = write_demo_data(out_dir, flows_per_class=flows_per_class, files_per_class=files_per_class, seed=seed)
    out.print(f"wrote {sum(counts.values())} simulated biflows in {len(counts)} classes "
              f"({', '.join(counts)}) to {out_dir}/<class>/capture-*.pcap")


@cli.command("export")
@click.argument("flows_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, help="Folder for <class>/synthetic.pcap, or one FILE.pcap.")
@click.option("--protocol", default="tcp", show_default=True,
              help="tcp (handshake, ACKs, FIN) or udp, for flows that carry no protocol of their own.")
@click.option("--server-port", default=443, show_default=True, help="For flows that carry no server port of their own.")
@click.option("--start", default=1.7e9, show_default=True, help="Time of the first packet (Unix seconds).")
@click.option("--rate", type=float, default=None, metavar="FLOWS_PER_S",
              help="Flows start at this rate and overlap [default: one after another, 1 s apart].")
@click.option("--client-net", default=None, metavar="CIDR", help="Client addresses [default: 10.0.0.0/8].")
@click.option("--server-net", default=None, metavar="CIDR",
              help="Server addresses, one per class in turn [default: 192.0.2.1/32].")
@click.option("--overwrite", is_flag=True, help="Replace captures the output already holds.")
def export_command(flows_file, output, protocol, server_port, start, rate, client_net, server_net, overwrite):
    """Write flows (synthetic or real) as pcap captures that `netsynth ingest` and other tools read."""
    from netsynth.export import Addresses, export
    from netsynth.flows import FlowSet

    addresses = Addresses.parse(client_net, server_net)
    flows = FlowSet.read(flows_file)
    target = Path(output)
    if not overwrite and (target.is_file() or (target.is_dir() and any(target.rglob("*.pcap")))):
        raise NetsynthError(f"{output} already holds captures; use --overwrite to replace them, or choose another folder")
    written = export(flows, target, protocol, server_port, start, progress=track, rate=rate, addresses=addresses)
    how = f"{protocol.upper()} conversations" if flows.service is None else \
        "conversations of their own protocol and server port"
    out.print(f"wrote {len(flows)} flows as {how} in {len(written)} capture(s) under {output}")


def refuse_overwrite(folder: Path, allowed: bool, what: str, other: str = "") -> None:
    """Training into a folder that holds a model (or its checkpoint) replaces it only when asked to."""
    if allowed or not any((folder / name).exists() for name in ("config.json", "model.safetensors", "checkpoint")):
        return
    raise NetsynthError(f"{folder} already holds {what}; use --overwrite to replace it{' ' + other if other else ''}, "
                        "or choose another folder")


def parse_settings(pairs) -> dict:
    """--set key=value pairs; values read as JSON where they can be (numbers, lists, true/false)."""
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise NetsynthError(f"--set takes key=value, got {pair!r}")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return settings


@cli.command()
@click.argument("kind")
@click.argument("train_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Model folder to write.")
@click.option("--epochs", type=int, default=None, help="Training epochs, at least 1 [default: the kind's own; neural kinds].")
@click.option("--min-steps", type=int, default=None,
              help="Optimizer steps that the epoch cap rises to on small sets [default: the kind's own, 0 with --epochs].")
@click.option("--batch-size", type=int, default=None, help="Flows per training step [default: 256; neural kinds].")
@click.option("--lr", type=float, default=None, help="Peak learning rate [default: the kind's own; neural kinds].")
@click.option("--seed", type=int, default=None, help="Seed of every random choice [default: 0].")
@click.option("--device", default=None, help="auto | cpu | cuda (neural models).")
@click.option("--precision", default=None,
              help="auto | fp32 | bf16 [default: auto: bf16 where the chip is fast at it and the kind allows].")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any model setting (see `netsynth models`).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in the output folder.")
@click.option("--checkpoint-every", type=float, default=None, metavar="SECONDS",
              help="Seconds between checkpoints; one follows the last epoch [default: 30; 0: every epoch].")
@click.option("--overwrite", is_flag=True, help="Replace a model the output folder already holds.")
@click.option("--timing", is_flag=True,
              help="Sampled flows carry inter-arrival times and services: llama and mamba learn gaps with a head of "
                   "their own, other kinds draw them from a per-class empirical model.")
@click.option("--dp-epsilon", type=float, default=None, help="Train with differential privacy to this epsilon (llama, mamba, cvae: DP-SGD; markov, tables: noisy counts).")
@click.option("--dp-delta", type=float, default=None, help="DP delta [default: 1 / (10 x training flows)].")
@click.option("--dp-max-grad-norm", type=float, default=None, help="DP-SGD's per-flow gradient bound [default: 1.0].")
@click.option("--compile", "compile_", is_flag=True,
              help="llama: train through torch.compile (faster epochs after 30-50 s of compilation; for large sets).")
@click.option("--ema", is_flag=True,
              help="Validate, keep and end with an exponential moving average of the weights (neural kinds).")
def train(kind, train_file, output, epochs, min_steps, batch_size, lr, seed, device, precision, sets, resume,
          checkpoint_every, overwrite, timing, dp_epsilon, dp_delta, dp_max_grad_norm, compile_, ema):
    """Train a generator of KIND on a FlowSet (written by `netsynth ingest`) and save it to a folder."""
    import contextlib

    from netsynth.flows import FlowSet
    from netsynth.lock import folder_lock
    from netsynth.models import create
    from netsynth.train import is_main_process

    model = create(kind, **parse_settings(sets))
    if resume and "resume" not in model.train_options:
        raise NetsynthError(f"--resume applies to models trained in epochs; {kind} trains in one pass")
    flows = FlowSet.read(train_file)
    # in a distributed launch every process holds the same weights; the main one holds the folder and saves them
    with folder_lock(output) if is_main_process() else contextlib.nullcontext():
        refuse_overwrite(Path(output), overwrite or resume, "a model",
                         "or --resume to continue its training" if "resume" in model.train_options else "")
        implicit = model.used_train_options({"checkpoint_dir": output, "verbose": True})  # noted only when asked for
        model.fit(flows, epochs=epochs, min_steps=min_steps, batch_size=batch_size, lr=lr, seed=seed, device=device,
                  precision=precision, resume=resume or None, checkpoint_every=checkpoint_every, timing=timing,
                  dp_epsilon=dp_epsilon, dp_delta=dp_delta, dp_max_grad_norm=dp_max_grad_norm,
                  compile=compile_ or None, ema=ema or None, **implicit)
        if not is_main_process():
            return
        model.save(output)
    what = "parameters" if "epochs" in model.train_options else "stored numbers"
    dp = getattr(model, "privacy_", None)
    out.print(f"trained {kind} ({model.n_parameters:,} {what}) on {len(flows)} flows, "
              f"{len(model.classes_)} classes" + (f", differentially private (epsilon {dp['epsilon']:.2f}, delta "
                                                  f"{dp['delta']:.1e})" if dp else "") + f"; wrote {output}")


@cli.command()
@click.argument("model_dir")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--per-class", type=int, default=None, help="Flows per class (at least 1).")
@click.option("--like", type=click.Path(dir_okay=False), default=None, help="Same class counts as this FlowSet.")
@click.option("--counts", "counts_file", type=click.Path(dir_okay=False), default=None, help="CSV of label,count.")
@click.option("--seed", default=0, show_default=True)
@click.option("--temperature", type=float, default=None, help="Sampling temperature (sequence models, cvae).")
@click.option("--top-k", type=int, default=None, help="Sample among the k most likely tokens (sequence models).")
@click.option("--batch-size", type=int, default=None,
              help="Flows generated at once [default: 1,024; llama and mamba on a GPU 32,768].")
@click.option("--device", default=None, help="auto | cpu | cuda (neural models).")
@click.option("--precision", default=None, help="auto | fp32 | bf16 (sequence models) [default: auto].")
@click.option("--steps", type=int, default=None, help="Denoising steps (diffusion).")
@click.option("--sampler", default=None, help="dpm-solver++ | ddim (diffusion).")
@click.option("--no-copies", "no_copies", type=click.Path(dir_okay=False), default=None, metavar="TRAIN.parquet",
              help="Redraw flows that copy a flow of 4+ packets of this FlowSet (the model's training flows).")
def generate(model_dir, output, per_class, like, counts_file, seed, no_copies, **options):
    """Generate synthetic flows from a trained model."""
    from netsynth.flows import FlowSet
    from netsynth.models import load

    if sum(x is not None for x in (per_class, like, counts_file)) != 1:
        raise NetsynthError("give exactly one of --per-class, --like, --counts")
    if per_class is not None and per_class < 1:
        raise NetsynthError(f"--per-class must be at least 1, got {per_class}")
    model = load(model_dir)
    if per_class is not None:
        synth = model.sample(n_per_class=per_class, seed=seed, **options)
    else:
        counts = FlowSet.read(like).present_counts() if like else read_counts(counts_file)
        synth = model.sample({c: k for c, k in counts.items() if k > 0}, seed=seed, **options)
    if no_copies:
        from netsynth.models.base import data_hash
        from netsynth.privacy import LONG, redraw_copies

        train = FlowSet.read(no_copies)
        if model.data_hash_ is not None and data_hash(train) != model.data_hash_:  # DP models keep no hash
            console.print(f"[yellow]note:[/] {escape(no_copies)} is not the data this model was trained on", soft_wrap=True)
        synth, replaced, left = redraw_copies(model, synth, train, seed, **options)
        out.print(f"redrew {replaced} flows that copied a training flow of {LONG}+ packets; {left} copies left")
    synth.write(output)
    out.print(f"generated {len(synth)} flows in {len(synth.present_counts())} classes with {model.kind}; wrote {output}")


def read_counts(path) -> dict[str, int]:
    import csv

    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r]
    except OSError as e:
        raise NetsynthError(f"{path}: cannot read ({e.strerror})") from None
    if rows and rows[0][:2] == ["label", "count"]:
        rows = rows[1:]
    try:
        return {r[0]: int(r[1]) for r in rows}
    except (IndexError, ValueError):
        raise NetsynthError(f"{path}: expected rows of label,count") from None


@cli.command()
@click.argument("small_file", type=click.Path(dir_okay=False))
@click.option("--method", required=True, help="smote, fast-retransmit, or a trained model folder.")
@click.option("--to-majority-of", "full_file", required=True, type=click.Path(dir_okay=False),
              help="Top every class up to the largest class of this FlowSet.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--seed", default=0, show_default=True)
def augment(small_file, method, full_file, output, seed):
    """Top a small FlowSet up with synthetic flows to the majority-class size of a full one."""
    from netsynth.augment import top_up
    from netsynth.flows import FlowSet
    from netsynth.models import create, load
    from netsynth.models.registry import names

    small = FlowSet.read(small_file)
    target = max(FlowSet.read(full_file).class_counts().values())
    generator = create(method).fit(small) if method in names("baseline") else load(method)
    result = top_up(small, generator, target, seed=seed)
    result.write(output)
    out.print(f"{len(small)} real + {len(result) - len(small)} synthetic ({method}) flows, "
              f"{target} per class; wrote {output}")


def _train_defaults(cls) -> str:
    import dataclasses

    from netsynth.models.options import TrainSettings
    shown = ("epochs", "min_steps", "batch_size", "lr", "patience")
    values = {**{f.name: f.default for f in dataclasses.fields(TrainSettings)}, **cls.train_defaults}
    return ", ".join(f"{k}={values[k]}" for k in shown)


@cli.command()
def models():
    """Model kinds, their default settings and parameter counts."""
    import dataclasses

    from netsynth.models.registry import KINDS

    say = lambda line: out.print(line, soft_wrap=True, highlight=False, markup=False)  # noqa: E731  never cut
    say("generators; parameters for 10 classes, N=10, max size 1500, full vocabulary")
    for kind in KINDS.values():
        cls = kind.load()
        count = cls.nominal_parameters(n_classes=10, n_packets=10, max_size=1500)
        defaults = ", ".join(f"{f.name}={getattr(cls.Config(), f.name)}" for f in dataclasses.fields(cls.Config))
        train = (f"all (see `netsynth train --help`); defaults {_train_defaults(cls)}" if kind.trains
                 else ", ".join(sorted(cls.train_options)) or "none")
        say("")
        say(f"{kind.name} ({kind.role}, {f'{count:,} parameters' if count is not None else 'keeps its training data'})")
        say(f"  {cls.description}")
        say(f"  settings (--set KEY=VALUE): {defaults or 'none'}")
        say(f"  train options: {train}; generate options: {', '.join(sorted(cls.sample_options)) or 'none'}")


@cli.command()
@click.option("--real", "real_file", required=True, type=click.Path(dir_okay=False), help="Real test flows.")
@click.option("--train", "train_file", required=True, type=click.Path(dir_okay=False), help="The generator's training flows.")
@click.option("--synthetic", "synth_file", required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False), help="Write every number as JSON.")
@click.option("--seed", default=0, show_default=True)
@click.option("--bin-width", default=1, show_default=True, help="Histogram bin width in bytes (1 = exact values).")
def evaluate(real_file, train_file, synth_file, output, seed, bin_width):
    """Fidelity and privacy metrics, the real-vs-real floor, and train-on-synthetic/test-on-real F1."""
    from netsynth.flows import FlowSet
    from netsynth.metrics import METRIC_NAMES, check_comparable, fidelity, real_floor
    from netsynth.privacy import audit
    from netsynth.tasks.tstr import tstr
    from netsynth.timing import timing_fidelity

    real, train, synth = FlowSet.read(real_file), FlowSet.read(train_file), FlowSet.read(synth_file)
    check_comparable(real, train, "training")
    scores = fidelity(real, synth, train=train, bin_width=bin_width)
    floor = real_floor(real, train, bin_width=bin_width)
    timing = timing_fidelity(real, synth)
    if timing:
        timing_floor = timing_fidelity(real, train.select(list(real.present_counts())))
        timing["floor"] = timing_floor and timing_floor["macro"]
    f1 = tstr(train, real, synth, seed=seed, timing=timing is not None and train.iat is not None)
    privacy = audit(train, real, synth, seed=seed)
    result = {"macro": scores["macro"], "per_class": scores["per_class"], "floor": floor["macro"], "tstr": f1,
              "privacy": privacy, "timing": timing, "files": {"real": real_file, "train": train_file, "synthetic": synth_file}, "seed": seed}
    table = Table(title=f"{synth_file} vs {real_file} (lower is better)")
    table.add_column("metric")
    table.add_column("synthetic", justify="right")
    table.add_column("real vs real floor", justify="right")
    for name in METRIC_NAMES:
        table.add_row(name, f"{scores['macro'][name]:.4f}", f"{floor['macro'][name]:.4f}")
    for name, value in (timing or {}).get("macro", {}).items():
        table.add_row(name, f"{value:.4f}", f"{timing['floor'][name]:.4f}" if timing["floor"] else "-")
    out.print(table)
    out.print(f"TSTR macro F1: train on synthetic {100 * f1['train_on_synthetic']:.2f} %, "
              f"train on real {100 * f1['train_on_real']:.2f} %")
    if "train_on_synthetic_timing" in f1:
        out.print(f"TSTR macro F1 with timing features: train on synthetic "
                  f"{100 * f1['train_on_synthetic_timing']:.2f} %, train on real {100 * f1['train_on_real_timing']:.2f} %")
    out.print(f"class fidelity (a forest trained on real flows labels them with their class): synthetic "
              f"{100 * f1['class_fidelity_synthetic']:.2f} %, real test flows {100 * f1['class_fidelity_real']:.2f} %")
    print_privacy(privacy)
    if output:
        write_json(output, result)


def write_json(path: str, value: dict) -> None:
    from netsynth.fileio import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=1))
    out.print(f"wrote {path}")


def print_privacy(p: dict) -> None:
    from netsynth.privacy import LONG

    pct = lambda x: "-" if x is None else f"{100 * x:.1f} %"  # noqa: E731
    out.print(f"privacy: exact copies of training flows {pct(p['exact_copies'])} (real test flows: "
              f"{pct(p['exact_copies_base_rate'])}), of {LONG}+ packets {pct(p['exact_copies_long'])} (real: "
              f"{pct(p['exact_copies_long_base_rate'])}); closer to training than to test {pct(p['dcr_closer_to_train'])} "
              f"(50 % = no memorization); membership inference AUC black box {p['black_box']['auc']:.3f}"
              + (f", white box {p['white_box']['auc']:.3f}" if "white_box" in p else ""), highlight=False)


@cli.command()
@click.option("--train", "train_file", required=True, type=click.Path(dir_okay=False), help="The generator's training flows.")
@click.option("--test", "test_file", required=True, type=click.Path(dir_okay=False), help="Real flows it never saw.")
@click.option("--synthetic", "synth_file", required=True, type=click.Path(dir_okay=False))
@click.option("--model", "model_dir", default=None, help="The model folder, for the white-box attack (llama, mamba, cvae, markov, tables).")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False), help="Write every figure as JSON.")
@click.option("--seed", default=0, show_default=True)
def privacy(train_file, test_file, synth_file, model_dir, output, seed):
    """What synthetic flows reveal about the training flows: copies, distances, membership inference."""
    from netsynth.flows import FlowSet
    from netsynth.models import load
    from netsynth.privacy import audit

    model = load(model_dir) if model_dir else None
    if model is not None and not hasattr(model, "log_likelihood"):
        raise NetsynthError(f"--model: the white-box attack needs a model's likelihood; {model.kind} has none "
                            "(llama, mamba, cvae, markov and tables do)")
    result = audit(FlowSet.read(train_file), FlowSet.read(test_file), FlowSet.read(synth_file), seed=seed,
                   log_likelihood=model.log_likelihood if model is not None else None)
    print_privacy(result)
    if output:
        write_json(output, result)


@cli.command()
@click.argument("flows_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Results folder.")
@click.option("--models", default=None, help="Generative kinds to compare [default: all of them, see `netsynth models`].")
@click.option("--fractions", default=None, help="Kept fractions for augmentation [default: 0.05,0.1,0.15,0.2].")
@click.option("--seeds", type=int, default=None,
              help="Seeds: a model trained, a draw and a forest each, and the augmentation's splits [default: 3].")
@click.option("--one-model", is_flag=True,
              help="Train each model once; its seeds score draws of it (faster; leaves out the spread between trainings).")
@click.option("--epochs", type=int, default=None, help="Epochs of every neural model [default: each model's own].")
@click.option("--target-cap", type=int, default=None, help="Top classes up to at most this many flows (default: the majority's size).")
@click.option("--bin-width", type=int, default=None, help="Fidelity histogram bins in bytes [default: 1, exact values].")
@click.option("--no-efficiency", is_flag=True, help="Skip RQ4 (efficiency and quantization).")
@click.option("--timing", is_flag=True, help="Models carry timing (train --timing) and timing fidelity is reported.")
@click.option("--quick", is_flag=True, help="A fast look: 10 epochs, one seed, fractions 0.05 and 0.2, small efficiency runs.")
@click.option("--resume", is_flag=True, help="Continue a run in the same folder; finished steps are not redone.")
@click.option("--redo", default=None, metavar="KINDS",
              help="With --resume: train these models again (after a change), and redo what used their flows.")
@click.option("--overwrite", is_flag=True, help="Discard the results (and cached models) the folder holds and start again.")
def benchmark(flows_file, output, models, fractions, seeds, one_model, epochs, target_cap, bin_width, no_efficiency,
              timing, quick, resume, redo, overwrite):
    """Answer the paper's four research questions on a FlowSet: results.json, report.md, CSVs, plots."""
    import shutil

    from netsynth.lock import folder_lock

    if overwrite and resume:
        raise NetsynthError("--overwrite and --resume exclude each other")
    if redo and not resume:
        raise NetsynthError("--redo applies to a run continued with --resume")
    with folder_lock(output):
        if overwrite:
            (Path(output) / "results.json").unlink(missing_ok=True)
            shutil.rmtree(Path(output) / "cache", ignore_errors=True)
        given = {"models": [m.strip() for m in models.split(",") if m.strip()] if models else None, "seeds": seeds,
                 "model_per_seed": False if one_model else None, "epochs": epochs, "target_cap": target_cap,
                 "bin_width": bin_width, "efficiency": not no_efficiency, "timing": timing}
        redo = [k.strip() for k in (redo or "").split(",") if k.strip()]
        run_benchmark(flows_file, output, given, fractions, quick, resume, redo)


def run_benchmark(flows_file, output, given: dict, fractions: str | None, quick: bool, resume: bool, redo: list[str]):
    """The benchmark itself, once its folder is held; `given`: the ExperimentSettings named on the command line."""
    from netsynth.experiment import ExperimentSettings, run_experiment
    from netsynth.report import render

    if fractions:
        try:
            given["fractions"] = [float(f) for f in fractions.split(",")]
        except ValueError:
            raise NetsynthError(f"--fractions takes numbers separated by commas, got {fractions!r}") from None
    given = {k: v for k, v in given.items() if v is not None}
    settings = ExperimentSettings.quick_settings(**given) if quick else ExperimentSettings(**given)
    run_experiment(flows_file, output, settings, resume=resume, redo=redo,
                   log=lambda msg: console.print(msg, highlight=False, markup=False))
    path = render(output)
    out.print(f"report: {path}")


@cli.command()
@click.argument("results_dir", type=click.Path(file_okay=False))
def report(results_dir):
    """Re-render report.md, CSVs and plots from a benchmark folder's results.json."""
    from netsynth.report import render

    out.print(f"report: {render(results_dir)}")


@cli.command()
def doctor():
    """Versions, device, kernels, and a check that the samplers draw from their models' distribution.
    Exit status 1, with one line per problem, when something is wrong."""
    from netsynth.doctor import diagnose, report

    status = report(diagnose(), write=lambda line: out.print(line, highlight=False, markup=False, soft_wrap=True))
    if status:
        sys.exit(status)


@cli.command()
@click.argument("out_dir", type=click.Path(file_okay=False), default="demo", required=False)
@click.option("--seed", default=0, show_default=True)
def quickstart(out_dir, seed):
    """The whole pipeline on the built-in SIMULATED corpus, in a few minutes on a laptop CPU:
    demo-data, ingest, inspect, then a quick benchmark of llama and the baselines (split, train, generate,
    evaluate, report)."""
    ctx = click.get_current_context()
    root = Path(out_dir)
    ctx.invoke(demo_data, out_dir=str(root / "data"), seed=seed)
    ctx.invoke(ingest, inputs=(str(root / "data"),), output=str(root / "flows.parquet"))
    ctx.invoke(inspect, flowset=str(root / "flows.parquet"), plot=str(root / "flows.png"))
    ctx.invoke(benchmark, flows_file=str(root / "flows.parquet"), output=str(root / "results"),
               models="llama,cvae,markov", quick=True, resume=(root / "results" / "results.json").exists())


def _list_kinds(command: click.Command) -> None:
    from netsynth.models.registry import names
    command.help += (f"\n\nKIND: {', '.join(names('generative'))} (generative), {', '.join(names('private'))} "
                     f"(made for --dp-epsilon) or {', '.join(names('baseline'))} (baselines); `netsynth models` lists "
                     "each one's settings and defaults.")


_list_kinds(train)


def show_note(message, category, *_):
    """An option a model does not use is a note on one line, not a warning with a source line."""
    if issubclass(category, NetsynthNote):
        console.print(f"[yellow]note:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    else:
        default_showwarning(message, category, *_)


def main(argv=None):
    warnings.showwarning = show_note
    try:
        cli.main(args=argv, prog_name="netsynth", standalone_mode=False)
    except NetsynthError as e:
        console.print(f"[red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as e:  # a full disk, a folder that cannot be written: outputs are left as they were
        where = f"{e.filename}: " if e.filename else ""
        console.print(f"[red]error:[/] {escape(where + (e.strerror or str(e)))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except click.exceptions.Abort:
        console.print("aborted")
        sys.exit(130)
    except click.ClickException as e:  # one line, as every other error, with where to look
        ctx = getattr(e, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        console.print(f"[red]error:[/] {escape(e.format_message())}{hint}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
