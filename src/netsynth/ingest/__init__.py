"""Ingest real traffic from any supported input into one FlowSet (DESIGN section 3).

`ingest(paths, ...)` walks files and folders, detects each file's format by content, reads captures in
parallel (one NFStream meter per file, one worker per core), and merges everything through one FlowBuilder,
so every input gets the same filtering and counting. A damaged file among many is reported and skipped.
"""
from __future__ import annotations

import os
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Sequence

from netsynth.errors import NetsynthError
from netsynth.flows import FlowSet
from netsynth.machine import usable_cores
from netsynth.ingest.builder import FlowBuilder, IngestOptions, IngestReport
from netsynth.ingest.labels import UNKNOWN_NDPI, LabelRule
from netsynth.ingest.mirage import looks_like_mirage, read_mirage
from netsynth.ingest.pcap import is_capture, read_capture
from netsynth.ingest.tables import TableColumns, is_cesnet, read_cesnet, read_sequences, read_table

__all__ = ["ingest", "detect_format", "IngestOptions", "IngestReport", "LabelRule", "TableColumns"]

TABLE_SUFFIXES = {".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".parquet"}
SIMULATED_MARKER = ".netsynth-simulated"  # written by `netsynth demo-data`; hidden, so never read as an input
CAPTURE_LENGTHS = "L4 payload bytes (NFStream flow meter)"


def is_simulated(path: Path) -> bool:
    """Whether `path` lies in a corpus that `netsynth demo-data` wrote (its marker in the folder or above)."""
    path = path.resolve()
    return any((folder / SIMULATED_MARKER).is_file() for folder in [path, *path.parents][:4])


def _lengths_measure(kind: str, table_is_cesnet: bool, columns: TableColumns) -> str:
    """What the lengths of one input measure, in words, for the report and the plots."""
    if kind == "mirage":
        return "L4 payload bytes (MIRAGE L4_payload_bytes)"
    if table_is_cesnet:
        return "payload bytes (CESNET PPI SIZE)"
    return f"the table column {columns.size or columns.sequence!r} (as given)"


def detect_format(path: Path) -> str:
    """'capture', 'mirage', 'flowset', 'table' (CESNET or sequences), decided by content, not only by name."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        raise NetsynthError(f"{path}: empty file")
    if is_capture(head):
        return "capture"
    if head[:4] == b"PAR1":
        import pyarrow.parquet as pq
        from netsynth.flows import META_KEY
        meta = pq.read_schema(path).metadata or {}
        return "flowset" if META_KEY in meta else "table"
    text = head.decode("utf-8", errors="replace")
    if looks_like_mirage(text):
        return "mirage"
    if path.suffix.lower() in TABLE_SUFFIXES and text.strip():
        return "table"
    if path.suffix.lower() in (".pcap", ".pcapng", ".cap"):
        raise NetsynthError(f"{path}: not a pcap or pcapng capture (unknown file header)")
    raise NetsynthError(f"{path}: unknown format (not a capture, MIRAGE JSON, Parquet, CSV or JSON table)")


def _expand(paths: Sequence[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """(file, root) pairs; folders are walked recursively, hidden files skipped."""
    files = []
    for p in map(Path, paths):
        if not p.exists():
            raise NetsynthError(f"{p}: no such file or folder")
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise NetsynthError(f"{p}: folder holds no files")
            files += [(f, p) for f in found]
        else:
            files.append((p, p.parent))
    return files


def _group_name(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.parent if root.name else root))
    except ValueError:
        return path.name


def ingest(paths: Sequence[str | os.PathLike], options: IngestOptions = IngestOptions(),
           label_from: str | None = None, columns: TableColumns = TableColumns(), min_flows: int = 1,
           workers: int | None = None, progress: Callable[[Iterable, int, str], Iterable] | None = None,
           ) -> tuple[FlowSet, IngestReport]:
    """Read every input into one FlowSet; returns it with a report of what was read, skipped and dropped."""
    reading = _Reading(_expand(paths), LabelRule.parse(label_from), FlowBuilder(options, IngestReport()))
    captures, others = reading.by_format()
    flowsets = reading.tables(others, columns)
    reading.captures(captures, options, workers, progress or (lambda it, total, what: it))
    return reading.flows(paths, flowsets, min_flows), reading.report


class _Reading:
    """One ingest run: the inputs by format, each read into the shared FlowBuilder, and what was read or skipped."""

    def __init__(self, files: list[tuple[Path, Path]], rule: LabelRule, builder: FlowBuilder):
        self.files, self.rule, self.builder, self.report = files, rule, builder, builder.report
        self.measures: list[str] = []  # what the lengths of each input read measure

    def skip(self, path: Path, message: str) -> None:
        """A damaged input is fatal alone, and reported and skipped among others."""
        if len(self.files) == 1:
            raise NetsynthError(message)
        self.report.skipped.append((str(path), message.split(": ", 1)[-1]))

    def by_format(self) -> tuple[list, list]:
        """(captures, others): (path, root, format) of every readable input; the label rule must fit them."""
        captures, others = [], []
        for path, root in self.files:
            try:
                kind = detect_format(path)
            except (NetsynthError, OSError) as e:
                self.skip(path, str(e) if isinstance(e, NetsynthError) else f"{path}: {e.strerror}")
                continue
            (captures if kind == "capture" else others).append((path, root, kind))
        if self.rule.kind == "ndpi" and others:
            raise NetsynthError(f"{others[0][0]}: --label-from ndpi applies to captures only")
        if self.rule.kind == "column" and captures:
            raise NetsynthError(f"{captures[0][0]}: --label-from column:NAME applies to tables and JSON, not captures")
        return captures, others

    def tables(self, others: list, columns: TableColumns) -> list[FlowSet]:
        """Read MIRAGE JSON and tables into the builder; returns (path, FlowSet) of the FlowSets (netsynth's own
        Parquet), as they are."""
        flowsets = []
        for path, root, kind in others:
            try:
                if kind == "flowset":
                    flowsets.append((path, FlowSet.read(path)))
                    self.report.inputs_read.append(str(path))
                    continue
                if kind == "mirage":
                    records, cesnet = list(read_mirage(path, self.rule)), False
                else:
                    df = read_table(path)
                    cesnet = is_cesnet(df)
                    records = list(read_cesnet(df, path, self.rule) if cesnet
                                   else read_sequences(df, path, self.rule, columns))
            except NetsynthError as e:
                self.skip(path, str(e))
                continue
            # several files: each is a capture or session, the group of its flows unless a column names one, so
            # that splits keep a capture on one side (as for pcaps); one file alone has no such structure to keep
            file_group = _group_name(path, root) if len(others) > 1 else None
            for sizes, dirs, label, group, iat, service in records:
                self.builder.add(sizes, dirs, label, file_group if group is None else group, iat, service)
            self.report.inputs_read.append(str(path))
            self.measures.append(_lengths_measure(kind, cesnet, columns))
        return flowsets

    def captures(self, captures: list, options: IngestOptions, workers: int | None, track) -> None:
        """Read the captures through the flow meter, one worker process per core, into the builder."""
        if not captures:
            return
        want_ndpi = self.rule.kind == "ndpi"
        args = [(str(p), options.n_packets, options.keep_empty, want_ndpi) for p, _, _ in captures]
        workers = workers or min(len(captures), usable_cores())
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                futures = [pool.submit(read_capture, *a) for a in args]
                results = _collect(track((f for f in futures), len(futures), "captures"))
        else:
            results = _collect(track((_Done(read_capture, a) for a in args), len(args), "captures"))
        for (path, root, _), (result, error) in zip(captures, results):
            if error is not None:
                self.skip(path, error)
                continue
            flows, damage = result
            if damage:
                self.report.partial.append((str(path), damage))
            self.report.inputs_read.append(str(path))
            self.measures.append(CAPTURE_LENGTHS)
            group = _group_name(path, root)
            # by default the folder names the class: the MIRAGE and IoT Sentinel layout data/<label>/*.pcap
            file_label = self.rule.for_file(path) if self.rule.kind == "map" else path.parent.name
            for sizes, dirs, iat, app, service in flows:
                label = (None if app in UNKNOWN_NDPI else app) if want_ndpi else file_label
                self.builder.add(sizes, dirs, label, group, iat, service)

    def flows(self, paths: Sequence[str | os.PathLike], flowsets: list[tuple[Path, FlowSet]],
              min_flows: int) -> FlowSet:
        """The built flows and the FlowSets read as they are, as one FlowSet of at least two classes."""
        report = self.report
        if not report.inputs_read:
            reasons = "; ".join(f"{p}: {r}" for p, r in report.skipped[:3])
            more = len(report.skipped) - 3
            raise NetsynthError(f"none of {len(report.skipped)} inputs could be read ({reasons}"
                                + (f"; and {more} more" if more > 0 else "") + ")")
        parts = []
        if report.flows_seen:
            provenance = {"simulated": any(is_simulated(Path(p)) for p in paths),
                          "lengths": "; ".join(dict.fromkeys(self.measures))}
            parts.append(self.builder.build(min_flows=min_flows, meta={"sources": [str(p) for p in paths],
                                                                       "provenance": provenance}))
        if flowsets:
            _check_lengths(flowsets, self.builder.options.n_packets if report.flows_seen else None)
            parts += [f for _, f in flowsets]
            report.flows_kept += sum(len(f) for _, f in flowsets)
        source = report.inputs_read[0] if len(report.inputs_read) == 1 else f"{len(report.inputs_read)} inputs"
        flows = _drop_small_classes(FlowSet.concat(parts) if len(parts) > 1 else parts[0], min_flows, report, source)
        if len(flows.classes) < 2:
            raise NetsynthError(f"{source}: labels have a single class ({flows.classes[0]!r}); "
                                "a class-conditioned model needs at least two")
        return flows


def _check_lengths(flowsets: list[tuple[Path, FlowSet]], n_packets: int | None) -> None:
    """FlowSet inputs keep their packets per flow (N), so they merge only with inputs of the same N: the captures and
    tables read with `--packets` (`n_packets`, None where there are none) and the other FlowSets."""
    lengths = {str(path): f.n_packets for path, f in flowsets}
    if n_packets is not None:
        lengths["the captures and tables (--packets)"] = n_packets
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name}: {n}" for name, n in lengths.items())
        raise NetsynthError(f"inputs of different packets per flow cannot be merged ({listed}); --packets applies to "
                            "captures and tables, a FlowSet keeps its own")


def _drop_small_classes(flows: FlowSet, min_flows: int, report: IngestReport, source: str) -> FlowSet:
    """`flows` without the classes of fewer than `min_flows` flows, counted over every input (captures, tables and
    FlowSets alike), with the dropped counts in the report."""
    counts = flows.present_counts()
    small = {c: k for c, k in counts.items() if k < min_flows}
    report.dropped_small_classes = dict(sorted(small.items()))
    if not small:
        return flows
    if len(small) == len(counts):
        raise NetsynthError(f"{source}: every class has fewer than --min-flows {min_flows} flows: "
                            f"{report.dropped_small_classes}")
    report.flows_kept -= sum(small.values())
    return flows.select([c for c in flows.classes if c in counts and c not in small])


class _Done:
    """A finished-when-asked stand-in for a Future, so the serial path shares the collection code."""
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def result(self):
        return self.fn(*self.args)


def _collect(futures) -> list[tuple[list | None, str | None]]:
    out = []
    for fut in futures:
        try:
            out.append((fut.result(), None))
        except NetsynthError as e:
            out.append((None, str(e)))
        except BrokenExecutor:  # the flow meter died (a crash in native code): name the file, go on with the rest
            out.append((None, "the flow meter's process died reading it"))
    return out
