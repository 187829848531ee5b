"""pcap/pcapng captures through NFStream, the field's flow meter (biflow assembly and nDPI labels).

NFStream reports, per biflow, the payload size (accounting_mode=3), direction (0 = from the side that sent
the first packet) and inter-arrival time of its first packets ("splt" analysis, at most 255 packets).
Zero-payload packets are dropped afterwards, so without --keep-empty we ask for all 255 to find N packets
that carry payload.
"""
from __future__ import annotations

import struct
from pathlib import Path

from netsynth.errors import NetsynthError

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
SPLT_MAX = 255  # NFStream's upper bound for splt_analysis


def is_capture(head: bytes) -> bool:
    return head[:4] in PCAP_MAGICS or head[:4] == PCAPNG_MAGIC


def check_complete(path: Path) -> None:
    """Raise if the capture ends inside a record.

    libpcap (and so NFStream) stops silently at a truncated record and returns what it read, which would
    hide a damaged file; walking the record headers is a few microseconds per packet and catches it.
    """
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in PCAP_MAGICS:
        end = PCAP_MAGICS[magic]
        if len(data) < 24:
            raise NetsynthError(f"{path}: truncated capture (incomplete file header)")
        pos = 24
        while pos < len(data):
            if pos + 16 > len(data):
                raise NetsynthError(f"{path}: truncated capture (incomplete record header at byte {pos})")
            (incl_len,) = struct.unpack_from(end + "I", data, pos + 8)
            pos += 16 + incl_len
            if pos > len(data):
                raise NetsynthError(f"{path}: truncated capture (last packet cut short)")
    elif magic == PCAPNG_MAGIC:
        pos = 0
        end = "<"
        while pos < len(data):
            if pos + 12 > len(data):
                raise NetsynthError(f"{path}: truncated capture (incomplete block header at byte {pos})")
            if data[pos:pos + 4] == PCAPNG_MAGIC:  # a section header fixes the byte order of what follows
                end = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            (total,) = struct.unpack_from(end + "I", data, pos + 4)
            if total < 12 or pos + total > len(data):
                raise NetsynthError(f"{path}: truncated capture (block at byte {pos} cut short)")
            pos += total
    else:
        raise NetsynthError(f"{path}: not a pcap or pcapng capture")


def read_capture(path: str, n_packets: int, keep_empty: bool, want_ndpi: bool) -> list[tuple]:
    """Biflows of one capture as (sizes, directions, iat_seconds, application_name) tuples.

    Runs in a worker process (one per file), so it takes and returns plain values.
    """
    from nfstream import NFStreamer

    p = Path(path)
    check_complete(p)
    splt = n_packets if keep_empty else SPLT_MAX
    try:
        streamer = NFStreamer(source=str(p), statistical_analysis=False, splt_analysis=splt, accounting_mode=3,
                              n_dissections=20 if want_ndpi else 0, n_meters=1)
        flows = []
        for f in streamer:
            k = f.splt_direction.index(-1) if -1 in f.splt_direction else len(f.splt_direction)
            dirs = [1 if d == 0 else -1 for d in f.splt_direction[:k]]
            iat = [ms / 1000.0 for ms in f.splt_piat_ms[:k]]
            flows.append((f.splt_ps[:k], dirs, iat, f.application_name if want_ndpi else None))
    except ValueError as e:
        raise NetsynthError(f"{p}: cannot read capture ({e})") from None
    return flows
