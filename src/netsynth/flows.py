"""FlowSet: the one in-memory data model of netsynth (DESIGN section 2).

A FlowSet holds n biflows cut to their first N packets: payload `size` (uint16 [n, N]), `direction`
(int8 [n, N]: +1 upstream, -1 downstream, 0 padding), a class `label` per flow (from an ordered class
list), an optional `group` (the capture or session a flow came from), optional `iat` (float32 seconds since
the flow's previous packet, 0 for the first) and optional `service` (int32 [n, 2]: the transport protocol
number, 6 TCP or 17 UDP, and the server's port), which a replayable capture needs.
On disk it is one Parquet file whose key-value metadata carries N, the class list and how it was made.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from netsynth.errors import NetsynthError
from netsynth.fileio import atomic_path

MAX_PACKETS = 64
META_KEY = b"netsynth"


@dataclass(eq=False)
class FlowSet:
    size: np.ndarray
    direction: np.ndarray
    codes: np.ndarray  # int32 [n], index into `classes`
    classes: tuple[str, ...]
    group: np.ndarray | None = None  # object array of str [n]
    iat: np.ndarray | None = None
    service: np.ndarray | None = None  # int32 [n, 2]: (protocol, server port)
    meta: dict = field(default_factory=dict)  # how the flows were made: options, sources, counts

    def __post_init__(self):
        self.size = np.ascontiguousarray(self.size, dtype=np.uint16)
        self.direction = np.ascontiguousarray(self.direction, dtype=np.int8)
        self.codes = np.ascontiguousarray(self.codes, dtype=np.int32)
        self.classes = tuple(str(c) for c in self.classes)
        n, N = self.direction.shape if self.direction.ndim == 2 else (-1, -1)
        if self.size.shape != self.direction.shape or self.codes.shape != (n,):
            raise ValueError(f"inconsistent shapes: size {self.size.shape}, direction {self.direction.shape}, labels {self.codes.shape}")
        if not 1 <= N <= MAX_PACKETS:
            raise ValueError(f"packets per flow must be 1..{MAX_PACKETS}, got {N}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("class names must be unique")
        if n and (self.codes.min() < 0 or self.codes.max() >= len(self.classes)):
            raise ValueError("a label code is outside the class list")
        if self.group is not None:
            self.group = np.asarray(self.group, dtype=object)
            if self.group.shape != (n,):
                raise ValueError("group must have one entry per flow")
        if self.iat is not None:
            self.iat = np.ascontiguousarray(self.iat, dtype=np.float32)
            if self.iat.shape != self.size.shape:
                raise ValueError("iat must have the shape of size")
        if self.service is not None:
            self.service = np.ascontiguousarray(self.service, dtype=np.int32)
            if self.service.shape != (n, 2):
                raise ValueError("service must hold (protocol, server port) per flow")
        self._check_invariants()

    def _check_invariants(self):
        d = self.direction
        if d.size and (d.min() < -1 or d.max() > 1):  # np.isin: 10.7 us at one flow, this 1.7
            raise ValueError("directions must be +1, -1 or 0 (padding)")
        real = d != 0
        if len(d) and not real[:, 0].all():
            raise ValueError("every flow needs at least one packet")
        # padding is only ever at the right end: once a row has a 0, it stays 0
        if (real[:, 1:] & ~real[:, :-1]).any():
            raise ValueError("padding must be at the end of a flow")
        if (self.size[~real] != 0).any():
            raise ValueError("padding positions must have size 0")

    # construction -------------------------------------------------------------------------------------
    @classmethod
    def from_signed(cls, signed: np.ndarray, labels: Sequence[str], classes: Sequence[str] | None = None,
                    group=None, iat=None, service=None, meta: dict | None = None) -> "FlowSet":
        """Build from signed lengths [n, N] (direction * size, 0 = padding). Zero-payload packets need `direction`."""
        signed = np.asarray(signed, dtype=np.int64)
        return cls.from_labels(np.abs(signed), np.sign(signed), labels, classes=classes, group=group, iat=iat,
                               service=service, meta=meta)

    @classmethod
    def from_labels(cls, size, direction, labels: Sequence[str], classes: Sequence[str] | None = None,
                    group=None, iat=None, service=None, meta: dict | None = None) -> "FlowSet":
        labels = np.asarray([str(x) for x in labels], dtype=object)
        if classes is None:
            classes = sorted(set(labels.tolist()))
        index = {c: i for i, c in enumerate(classes)}
        missing = sorted(set(labels.tolist()) - index.keys())
        if missing:
            raise NetsynthError(f"labels {missing} are not in the class list")
        codes = np.fromiter((index[x] for x in labels), dtype=np.int32, count=len(labels))
        return cls(np.asarray(size), np.asarray(direction), codes, tuple(classes), group=group, iat=iat,
                   service=service, meta=meta or {})

    # views ----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.codes)

    @property
    def n_packets(self) -> int:
        return self.size.shape[1]

    @property
    def length(self) -> np.ndarray:
        return (self.direction != 0).sum(axis=1)

    @property
    def label(self) -> np.ndarray:
        return np.asarray(self.classes, dtype=object)[self.codes]

    @property
    def signed(self) -> np.ndarray:
        """direction * size as int32 [n, N]: the paper's signed payload lengths."""
        return self.direction.astype(np.int32) * self.size.astype(np.int32)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.codes, minlength=len(self.classes))
        return {c: int(k) for c, k in zip(self.classes, counts)}

    def present_counts(self) -> dict[str, int]:
        """Flows per class, for the classes that have any."""
        return {c: k for c, k in self.class_counts().items() if k}

    def sequences(self) -> list[tuple[int, ...]]:
        """Each flow as a tuple of signed lengths without padding (hashable, for set-based metrics)."""
        signed, length = self.signed, self.length
        return [tuple(row[:k].tolist()) for row, k in zip(signed, length)]

    def __repr__(self) -> str:
        return f"FlowSet({len(self)} flows, N={self.n_packets}, {len(self.classes)} classes)"

    # dataset operations ---------------------------------------------------------------------------------
    def take(self, index) -> "FlowSet":
        index = np.asarray(index)
        if index.dtype != bool:
            index = index.astype(np.int64)
        return FlowSet(self.size[index], self.direction[index], self.codes[index], self.classes,
                       group=None if self.group is None else self.group[index],
                       iat=None if self.iat is None else self.iat[index],
                       service=None if self.service is None else self.service[index], meta=dict(self.meta))

    def select(self, classes: Iterable[str]) -> "FlowSet":
        """Keep only `classes` (in the order given); the class list shrinks to them."""
        classes = list(classes)
        unknown = sorted(set(classes) - set(self.classes))
        if unknown:
            raise NetsynthError(f"unknown classes {unknown}; known: {list(self.classes)}")
        old = [self.classes.index(c) for c in classes]
        remap = np.full(len(self.classes), -1, dtype=np.int32)
        remap[old] = np.arange(len(old))
        keep = np.flatnonzero(remap[self.codes] >= 0)
        out = self.take(keep)
        out.codes = remap[out.codes]
        out.classes = tuple(classes)
        return out

    def with_classes(self, classes: Sequence[str]) -> "FlowSet":
        """The same flows under a larger class list (e.g. a subset that lost a class keeps its place)."""
        missing = sorted(set(self.classes) - set(classes))
        if missing:
            raise NetsynthError(f"classes {missing} are not in the new class list")
        return FlowSet.from_labels(self.size, self.direction, self.label, classes=classes,
                                   group=self.group, iat=self.iat, service=self.service, meta=dict(self.meta))

    @staticmethod
    def concat(flowsets: Sequence["FlowSet"]) -> "FlowSet":
        """Concatenate FlowSets with the same N; the class list is the union in order of first appearance."""
        if not flowsets:
            raise NetsynthError("nothing to concatenate")
        Ns = {f.n_packets for f in flowsets}
        if len(Ns) > 1:
            raise NetsynthError(f"cannot concatenate flows with different packets per flow: {sorted(Ns)}")
        classes = list(dict.fromkeys(c for f in flowsets for c in f.classes))
        def joined(name):  # a per-flow field survives only where every part has it
            parts = [getattr(f, name) for f in flowsets]
            return None if any(p is None for p in parts) else np.concatenate(parts)
        labels = np.concatenate([f.label for f in flowsets])
        return FlowSet.from_labels(np.concatenate([f.size for f in flowsets]),
                                   np.concatenate([f.direction for f in flowsets]), labels, classes=classes,
                                   group=joined("group"), iat=joined("iat"), service=joined("service"),
                                   meta=dict(flowsets[0].meta))

    def split(self, test_size: float = 0.2, seed: int = 0) -> tuple["FlowSet", "FlowSet"]:
        """Train/test split: by group when groups exist (no group on both sides), else stratified by class.

        With groups, scikit-learn's StratifiedGroupKFold keeps class proportions as close as the groups allow;
        the test side is the first of round(1 / test_size) folds that leaves no class of two or more groups
        out of either side (the fold assignment is a heuristic; before scikit-learn 1.8 it often left a class
        out of the first fold), else the first fold.
        """
        from sklearn.model_selection import StratifiedGroupKFold, train_test_split

        if not 0 < test_size < 1:
            raise NetsynthError(f"test_size must be in (0, 1), got {test_size}")
        idx = np.arange(len(self))
        if self.group is not None and len(set(self.group.tolist())) > 1:
            n_splits = max(2, round(1 / test_size))
            n_groups = len(set(self.group.tolist()))
            if n_groups < n_splits:
                raise NetsynthError(f"{n_groups} captures (groups) are too few to split by capture with test_size "
                                    f"{test_size}: at least {n_splits} are needed, since a capture's flows stay on one "
                                    "side; a table ingested without --group-column is split by flow")
            folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            candidates = list(folds.split(idx, self.codes, groups=self.group.astype(str)))
            train_idx, test_idx = next((c for c in candidates if self._splits_every_class(*c)), candidates[0])
        else:
            try:
                train_idx, test_idx = train_test_split(idx, test_size=test_size, random_state=seed, stratify=self.codes)
            except ValueError as e:
                few = sorted(c for c, n in self.class_counts().items() if n < 2)
                hint = f"; classes {few} have a single flow (netsynth ingest --min-flows 2 drops such classes)" if few else ""
                raise NetsynthError(f"cannot split stratified by class: {e}{hint}") from None
        return self.take(np.sort(train_idx)), self.take(np.sort(test_idx))

    def _splits_every_class(self, train_idx: np.ndarray, test_idx: np.ndarray) -> bool:
        """Whether every class with flows in two or more groups has flows on both sides."""
        groups = self.group.astype(str)
        for code in np.unique(self.codes):
            if len(set(groups[self.codes == code])) > 1 and not (
                    (self.codes[train_idx] == code).any() and (self.codes[test_idx] == code).any()):
                return False
        return True

    def subsample(self, fraction: float, seed: int = 0) -> "FlowSet":
        """Keep `fraction` of the flows of every class (rounded, at least one per non-empty class)."""
        if not 0 < fraction <= 1:
            raise NetsynthError(f"fraction must be in (0, 1], got {fraction}")
        rng = np.random.default_rng(seed)
        keep = []
        for code in range(len(self.classes)):
            members = np.flatnonzero(self.codes == code)
            if len(members):
                k = max(1, round(fraction * len(members)))
                keep.append(rng.choice(members, size=k, replace=False))
        return self.take(np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=int))

    # Parquet --------------------------------------------------------------------------------------------
    def to_arrow(self) -> pa.Table:
        N = self.n_packets
        cols = {
            "size": pa.FixedSizeListArray.from_arrays(pa.array(self.size.ravel(), pa.uint16()), N),
            "direction": pa.FixedSizeListArray.from_arrays(pa.array(self.direction.ravel(), pa.int8()), N),
            "length": pa.array(self.length.astype(np.uint8)),
            "label": pa.DictionaryArray.from_arrays(pa.array(self.codes, pa.int32()), pa.array(list(self.classes), pa.string())),
        }
        if self.group is not None:
            cols["group"] = pa.array(self.group.astype(str).tolist(), pa.string())
        if self.iat is not None:
            cols["iat"] = pa.FixedSizeListArray.from_arrays(pa.array(self.iat.ravel(), pa.float32()), N)
        if self.service is not None:
            cols["protocol"] = pa.array(self.service[:, 0], pa.uint8())
            cols["server_port"] = pa.array(self.service[:, 1], pa.uint16())
        meta = {"n_packets": N, "classes": list(self.classes), **self.meta}
        return pa.table(cols).replace_schema_metadata({META_KEY: json.dumps(meta).encode()})

    def write(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        with atomic_path(path) as tmp:
            pq.write_table(self.to_arrow(), tmp)
        return path

    @classmethod
    def read(cls, path: str | os.PathLike) -> "FlowSet":
        path = Path(path)
        if not path.exists():
            raise NetsynthError(f"{path}: no such file")
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError):
            raise NetsynthError(f"{path}: not a FlowSet Parquet file; if it holds traffic, ingest it first: "
                                f"netsynth ingest {path} -o flows.parquet") from None
        raw = (table.schema.metadata or {}).get(META_KEY)
        if raw is None:
            raise NetsynthError(f"{path}: not a netsynth FlowSet (no netsynth metadata); use `netsynth ingest` first")
        try:
            return cls.from_arrow(table, json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError, pa.ArrowException, RecursionError) as e:
            raise NetsynthError(f"{path}: damaged or foreign netsynth metadata ({type(e).__name__}: "
                                f"{str(e).splitlines()[0] if str(e) else 'no detail'})") from None

    @classmethod
    def from_arrow(cls, table: pa.Table, meta: Mapping) -> "FlowSet":
        meta = dict(meta)
        N = meta.pop("n_packets")
        classes = meta.pop("classes")

        def matrix(name, dtype):
            col = table.column(name).combine_chunks()
            return np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=dtype).reshape(len(table), N)

        label = table.column("label").combine_chunks()
        if isinstance(label, pa.DictionaryArray):
            names = label.dictionary.to_pylist()
            remap = np.array([classes.index(x) for x in names], dtype=np.int32)
            codes = remap[label.indices.to_numpy(zero_copy_only=False)]
        else:
            codes = np.array([classes.index(x) for x in label.to_pylist()], dtype=np.int32)
        group = np.array(table.column("group").to_pylist(), dtype=object) if "group" in table.column_names else None
        iat = matrix("iat", np.float32) if "iat" in table.column_names else None
        service = None
        if {"protocol", "server_port"} <= set(table.column_names):
            service = np.stack([table.column(c).to_numpy() for c in ("protocol", "server_port")], axis=1)
        return cls(matrix("size", np.uint16), matrix("direction", np.int8), codes, tuple(classes),
                   group=group, iat=iat, service=service, meta=meta)

    def equals(self, other: "FlowSet") -> bool:
        """Same flows, classes, groups, iat, services and metadata (used by round-trip tests)."""
        def same(a, b):
            return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
        return (self.classes == other.classes and same(self.size, other.size) and same(self.direction, other.direction)
                and same(self.codes, other.codes) and same(self.group, other.group) and same(self.iat, other.iat)
                and same(self.service, other.service) and self.meta == other.meta)
