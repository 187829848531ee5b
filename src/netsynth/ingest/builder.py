"""Turns per-flow packet lists from any reader into a FlowSet, applying the conventions of DESIGN section 2.

Every reader hands raw packets here, so zero-payload filtering, clipping, truncation to N packets and the
counting of what was dropped happen in one place.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from netsynth.errors import NetsynthError
from netsynth.flows import MAX_PACKETS, FlowSet


@dataclass(frozen=True)
class IngestOptions:
    n_packets: int = 10
    keep_empty: bool = False  # keep zero-payload packets (bare SYN/ACK/FIN)
    max_size: int = 1500  # larger payloads are clipped to it and counted

    def __post_init__(self):
        if not 1 <= self.n_packets <= MAX_PACKETS:
            raise NetsynthError(f"--packets must be 1..{MAX_PACKETS}, got {self.n_packets}")
        if not 1 <= self.max_size <= 65535:
            raise NetsynthError(f"--max-size must be 1..65535, got {self.max_size}")


@dataclass
class IngestReport:
    inputs_read: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    partial: list[tuple[str, str]] = field(default_factory=list)  # (file, where reading stopped and what was kept)
    flows_seen: int = 0
    flows_kept: int = 0
    dropped_empty: int = 0
    dropped_unlabeled: int = 0
    dropped_small_classes: dict[str, int] = field(default_factory=dict)
    packets_clipped: int = 0


class FlowBuilder:
    def __init__(self, options: IngestOptions, report: IngestReport):
        self.options = options
        self.report = report
        self._size: list[np.ndarray] = []
        self._direction: list[np.ndarray] = []
        self._iat: list[np.ndarray | None] = []
        self._labels: list[str] = []
        self._groups: list[str | None] = []
        self._services: list[tuple[int, int] | None] = []

    def add(self, sizes, directions, label: str | None, group: str | None, iat=None, service=None) -> None:
        """One biflow: payload sizes and directions (+1/-1) of its packets in order; iat in seconds or None;
        service (protocol number, server port) or None."""
        self.report.flows_seen += 1
        sizes = np.asarray(sizes, dtype=np.int64)
        directions = np.asarray(directions, dtype=np.int64)
        if not self.options.keep_empty:
            keep = sizes > 0
            sizes, directions = sizes[keep], directions[keep]
            if iat is not None and keep.any():
                # gaps are re-measured between kept packets; the first kept packet starts the flow
                stamps = np.cumsum(np.asarray(iat, dtype=np.float64))[keep]
                iat = np.diff(stamps, prepend=stamps[0])
        if len(sizes) == 0:
            self.report.dropped_empty += 1
            return
        if label is None or label == "":
            self.report.dropped_unlabeled += 1
            return
        N = self.options.n_packets
        sizes, directions = sizes[:N], directions[:N]
        clipped = sizes > self.options.max_size
        self.report.packets_clipped += int(clipped.sum())
        row_s = np.zeros(N, np.uint16)
        row_d = np.zeros(N, np.int8)
        row_s[: len(sizes)] = np.minimum(sizes, self.options.max_size)
        row_d[: len(sizes)] = np.where(directions > 0, 1, -1)
        self._size.append(row_s)
        self._direction.append(row_d)
        if iat is not None:
            row_t = np.zeros(N, np.float32)
            row_t[: len(sizes)] = np.asarray(iat)[:N]
            self._iat.append(row_t)
        else:
            self._iat.append(None)
        self._labels.append(str(label))
        self._groups.append(group)
        self._services.append(None if service is None else (int(service[0]), int(service[1])))

    def build(self, min_flows: int = 1, meta: dict | None = None) -> FlowSet:
        """The flows added so far; `min_flows` goes to the meta (ingest applies it over every input at once)."""
        if not self._labels:
            raise NetsynthError("every flow was filtered out: " + self.summary_line())
        groups = np.array(self._groups, dtype=object) if _every_known(self._groups) else None
        iat = np.stack(self._iat) if _every_known(self._iat) else None
        service = np.array(self._services, dtype=np.int32) if _every_known(self._services) else None
        self.report.flows_kept = len(self._labels)
        meta = {"options": {"n_packets": self.options.n_packets, "keep_empty": self.options.keep_empty,
                            "max_size": self.options.max_size, "min_flows": min_flows}, **(meta or {})}
        return FlowSet.from_labels(np.stack(self._size), np.stack(self._direction), self._labels,
                                   classes=sorted(set(self._labels)), group=groups, iat=iat, service=service,
                                   meta=meta)

    def summary_line(self) -> str:
        r = self.report
        return (f"{r.flows_seen} flows seen, {r.dropped_empty} had no packet left, "
                f"{r.dropped_unlabeled} had no label, {sum(r.dropped_small_classes.values())} were in small classes")


def _every_known(values: list) -> bool:
    """Whether every flow has the field: a FlowSet keeps a per-flow field only where all flows have it."""
    return all(v is not None for v in values)
