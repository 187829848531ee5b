"""Where a flow's class comes from: `folder`, `ndpi`, `column:NAME` or `map:FILE.csv`."""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from netsynth.errors import NetsynthError

UNKNOWN_NDPI = {"Unknown", ""}


@dataclass(frozen=True)
class LabelRule:
    kind: str  # "default" | "folder" | "ndpi" | "column" | "map"
    column: str | None = None
    mapping: dict = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def parse(cls, text: str | None) -> "LabelRule":
        if text is None or text == "default":
            return cls("default")
        if text in ("folder", "ndpi"):
            return cls(text)
        if text.startswith("column:") and len(text) > 7:
            return cls("column", column=text[7:])
        if text.startswith("map:") and len(text) > 4:
            return cls("map", mapping=read_mapping(Path(text[4:])))
        raise NetsynthError(f"--label-from must be folder, ndpi, column:NAME or map:FILE.csv, got {text!r}")

    def for_file(self, path: Path) -> str | None:
        """The label of every flow of `path` under the `folder` and `map` rules."""
        if self.kind == "folder":
            return path.parent.name
        if self.kind == "map":
            return self.mapping.get(path.name, self.mapping.get(str(path)))
        raise AssertionError(self.kind)


def read_mapping(path: Path) -> dict[str, str]:
    """A CSV of file name -> label (header `file,label`, or two columns without a header)."""
    if not path.is_file():
        raise NetsynthError(f"{path}: label map not found")
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["file", "label"]:
        rows = rows[1:]
    if not rows or any(len(r) < 2 for r in rows):
        raise NetsynthError(f"{path}: a label map needs two columns, file and label")
    return {r[0].strip(): r[1].strip() for r in rows}
