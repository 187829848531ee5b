"""Flow tables: CESNET DataZoo exports and plain sequence tables (CSV, JSON, JSON lines, Parquet)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from netsynth.errors import NetsynthError
from netsynth.ingest.labels import LabelRule

CESNET_FLAT = 30  # CESNET DataZoo flattens PPI into IPT_1..30, DIR_1..30, SIZE_1..30


@dataclass(frozen=True)
class TableColumns:
    """Which columns of a sequence table hold what (names given on the command line)."""
    sequence: str | None = None  # signed lengths per flow
    size: str | None = None
    direction: str | None = None
    group: str | None = None
    iat: str | None = None  # seconds since the flow's previous packet, per packet
    timestamp: str | None = None  # per-packet times in seconds (any origin); inter-arrival times are their differences
    protocol: str | None = None  # transport protocol: a number (6, 17) or a name (TCP, UDP)
    port: str | None = None  # the server's port


PROTOCOLS = {"tcp": 6, "udp": 17}


def _services(df: pd.DataFrame, path: Path, protocol: str | None, port: str | None) -> list:
    """Per flow (protocol number, server port), or None without both columns."""
    if not (protocol and port):
        if protocol or port:
            raise NetsynthError("--protocol-column and --port-column go together")
        return [None] * len(df)
    out = []
    for proto, number in zip(_require(df, path, protocol), _require(df, path, port)):
        try:
            value = PROTOCOLS.get(str(proto).strip().lower()) or int(float(proto))
            out.append((value, int(float(number))))
        except (TypeError, ValueError):
            raise NetsynthError(f"{path}: protocol {proto!r} / port {number!r} is not a protocol (number, TCP or "
                                "UDP) and a port number") from None
    return out


def read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        with open(path) as f:
            first = f.read(1 << 12).lstrip()
        if first.startswith("["):
            return pd.DataFrame(json.loads(path.read_text()))
        return pd.read_json(path, lines=True)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise NetsynthError(f"{path}: cannot read table ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise NetsynthError(f"{path}: JSON nested too deeply to be a table") from None


def is_cesnet(df: pd.DataFrame) -> bool:
    return "PPI" in df.columns or "SIZE_1" in df.columns


def _as_list(value, path: Path, column: str):
    """A cell holding a sequence: a list/array, or its text form in CSV ("[1, -2]" or "1 -2")."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return json.loads(text) if text.startswith("[") else [float(x) for x in text.replace(",", " ").split()]
        except ValueError:
            raise NetsynthError(f"{path}: column {column!r} holds {value[:40]!r}, not a list of numbers") from None
    if isinstance(value, (list, tuple, np.ndarray)):
        return value
    raise NetsynthError(f"{path}: column {column!r} holds {type(value).__name__}, not a list of numbers")


def _labels(df: pd.DataFrame, path: Path, rule: LabelRule, default: list[str]) -> list:
    if rule.kind == "ndpi":
        raise NetsynthError(f"{path}: --label-from ndpi applies to captures, not tables")
    if rule.kind in ("folder", "map"):
        return [rule.for_file(path)] * len(df)
    names = [rule.column] if rule.kind == "column" else default
    for name in names:
        if name in df.columns:
            return [None if pd.isna(x) else str(x) for x in df[name]]
    if names:
        raise NetsynthError(f"{path}: no label column {' or '.join(repr(n) for n in names)}; columns are {list(df.columns)}")
    raise NetsynthError(f"{path}: which column holds the labels? Name it with --label-from column:NAME; "
                        f"columns are {list(df.columns)}")


def _require(df: pd.DataFrame, path: Path, column: str):
    if column not in df.columns:
        raise NetsynthError(f"{path}: no column {column!r}; columns are {list(df.columns)}")
    return df[column]


def read_cesnet(df: pd.DataFrame, path: Path, rule: LabelRule):
    """CESNET DataZoo: PPI = [IPT (ms), DIR (+1/-1, 0 = padding), SIZE (payload), optional PUSH] per flow."""
    labels = _labels(df, path, rule, ["APP", "CATEGORY"])
    has_service = {"PROTOCOL", "DST_PORT"} <= set(df.columns)
    services = _services(df, path, *(("PROTOCOL", "DST_PORT") if has_service else (None, None)))
    if "PPI" in df.columns:
        for ppi, label, service in zip(df["PPI"], labels, services):
            rows = [_as_list(r, path, "PPI") for r in _as_list(ppi, path, "PPI")]
            if len(rows) < 3:
                raise NetsynthError(f"{path}: PPI must hold rows IPT, DIR, SIZE")
            ipt, dirs, sizes = (np.asarray(r, dtype=np.float64) for r in rows[:3])
            real = dirs != 0
            yield sizes[real].astype(np.int64), dirs[real], label, None, ipt[real] / 1000.0, service
    else:
        k = max(i for i in range(1, CESNET_FLAT + 1) if f"SIZE_{i}" in df.columns)
        sizes = np.stack([_require(df, path, f"SIZE_{i}").to_numpy(np.float64) for i in range(1, k + 1)], 1)
        dirs = np.stack([_require(df, path, f"DIR_{i}").to_numpy(np.float64) for i in range(1, k + 1)], 1)
        has_ipt = all(f"IPT_{i}" in df.columns for i in range(1, k + 1))
        ipt = np.stack([df[f"IPT_{i}"].to_numpy(np.float64) for i in range(1, k + 1)], 1) if has_ipt else None
        for j, label in enumerate(labels):
            real = np.nan_to_num(dirs[j]) != 0
            yield (sizes[j, real].astype(np.int64), dirs[j, real], label, None,
                   None if ipt is None else ipt[j, real] / 1000.0, services[j])


def _timing(df: pd.DataFrame, path: Path, columns: TableColumns) -> list:
    """Per flow, the inter-arrival times in seconds (the first packet's is 0), or None without a timing column."""
    if columns.iat and columns.timestamp:
        raise NetsynthError("--iat-column and --timestamp-column are alternatives: name one")
    name = columns.iat or columns.timestamp
    if name is None:
        return [None] * len(df)
    cells = [np.asarray(_as_list(v, path, name), dtype=np.float64) for v in _require(df, path, name)]
    if columns.timestamp:
        cells = [np.diff(t, prepend=t[:1]) for t in cells]
    if any((t < 0).any() or not np.isfinite(t).all() for t in cells):
        raise NetsynthError(f"{path}: column {name!r} holds negative or missing times")
    return cells


def _matched(iat, n: int, path: Path, columns: TableColumns):
    if iat is not None and len(iat) < n:
        raise NetsynthError(f"{path}: a flow has {n} packets but {len(iat)} times in column "
                            f"{columns.iat or columns.timestamp!r}")
    return None if iat is None else iat[:n]


def read_sequences(df: pd.DataFrame, path: Path, rule: LabelRule, columns: TableColumns):
    """A table with a signed-length column, or size + direction columns (direction > 0 = upstream); optionally
    per-packet inter-arrival times or timestamps."""
    labels = _labels(df, path, rule, [])
    groups = [str(g) for g in _require(df, path, columns.group)] if columns.group else [None] * len(df)
    times = _timing(df, path, columns)
    services = _services(df, path, columns.protocol, columns.port)
    if columns.size or columns.direction:
        if not (columns.size and columns.direction):
            raise NetsynthError("--size-column and --direction-column go together")
        pairs = zip(_require(df, path, columns.size), _require(df, path, columns.direction))
        for (s, d), label, group, iat, service in zip(pairs, labels, groups, times, services):
            sizes = np.asarray(_as_list(s, path, columns.size), dtype=np.int64)
            yield (sizes, np.asarray(_as_list(d, path, columns.direction), dtype=np.int64), label, group,
                   _matched(iat, len(sizes), path, columns), service)
        return
    name = columns.sequence
    if name is None:
        raise NetsynthError(f"{path}: name the column of signed lengths with --sequence-column "
                            f"(or --size-column and --direction-column); columns are {list(df.columns)}")
    for seq, label, group, iat, service in zip(_require(df, path, name), labels, groups, times, services):
        signed = np.asarray(_as_list(seq, path, name), dtype=np.int64)
        yield np.abs(signed), np.sign(signed), label, group, _matched(iat, len(signed), path, columns), service
