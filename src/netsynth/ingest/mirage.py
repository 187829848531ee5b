"""MIRAGE-2019/2022 JSON: one object per capture, keyed "src_ip,src_port,dst_ip,dst_port,proto".

Per-packet lists live in `packet_data` (`L4_payload_bytes`, `packet_dir` with 0 = upstream, `iat`), the
label in `flow_metadata` (`BF_label` by default).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from netsynth.errors import NetsynthError
from netsynth.ingest.labels import LabelRule

KEY = re.compile(r'^\s*\{\s*"[0-9a-fA-F.:]+,\d+,[0-9a-fA-F.:]+,\d+,\d+"\s*:')


def looks_like_mirage(head: str) -> bool:
    return bool(KEY.match(head))


def read_mirage(path: Path, rule: LabelRule):
    """Yield (sizes, directions, label, group, iat, service) per biflow; the group is the capture (the file); the
    service (protocol, server port) comes from the biflow key "client ip,client port,server ip,server port,proto"."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise NetsynthError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise NetsynthError(f"{path}: JSON nested too deeply to be a MIRAGE file") from None
    if not isinstance(doc, dict):
        raise NetsynthError(f"{path}: not a MIRAGE file (expected one object keyed by biflow)")
    column = rule.column if rule.kind == "column" else "BF_label"
    if rule.kind == "ndpi":
        raise NetsynthError(f"{path}: --label-from ndpi applies to captures, not MIRAGE JSON")
    for key, flow in doc.items():
        packets = flow.get("packet_data") if isinstance(flow, dict) else None
        if not isinstance(packets, dict) or "L4_payload_bytes" not in packets or "packet_dir" not in packets:
            raise NetsynthError(f"{path}: biflow {key!r} has no packet_data with L4_payload_bytes and packet_dir")
        if rule.kind in ("folder", "map"):
            label = rule.for_file(path)
        else:
            metadata = flow.get("flow_metadata", {})
            if column not in metadata:
                raise NetsynthError(f"{path}: biflow {key!r} has no flow_metadata.{column}")
            label = metadata[column]
        dirs = [1 if d == 0 else -1 for d in packets["packet_dir"]]
        yield packets["L4_payload_bytes"], dirs, label, path.name, packets.get("iat"), _service(key)


def _service(key: str) -> tuple[int, int] | None:
    parts = str(key).split(",")
    try:
        return (int(parts[4]), int(parts[3])) if len(parts) == 5 else None
    except ValueError:
        return None
