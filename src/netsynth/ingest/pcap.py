"""pcap/pcapng captures through NFStream, the field's flow meter (biflow assembly and nDPI labels).

NFStream reports, per biflow, the payload size (accounting_mode=3), direction (0 = from the side that sent
the first packet) and inter-arrival time of its first packets ("splt" analysis, at most 255 packets).
Zero-payload packets are dropped afterwards, so without --keep-empty we ask for all 255 to find N packets
that carry payload.
"""
from __future__ import annotations

import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from netsynth.errors import NetsynthError

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
SPLT_MAX = 255  # NFStream's upper bound for splt_analysis


def is_capture(head: bytes) -> bool:
    return head[:4] in PCAP_MAGICS or head[:4] == PCAPNG_MAGIC


MAX_RECORD = 262144  # libpcap's largest snapshot length; a longer record length is damage, not a packet
PACKET_BLOCKS = {2, 3, 6}  # pcapng: (obsolete) packet, simple packet, enhanced packet blocks


@dataclass
class Extent:
    """How much of a capture can be read: the intact prefix, its packets, and what stops reading (None: nothing)."""
    end: int
    packets: int
    damage: str | None = None


def intact_extent(path: Path) -> Extent:
    """Walk the record (pcap) or block (pcapng) headers up to the first damage.

    libpcap stops silently at a damaged record and returns what it read, which would hide the damage; a walk of
    the headers (a read and a seek per packet, so memory stays flat however large the file) finds where reading
    must stop, so that the packets before it are kept and the damage is reported.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(24)
        if head[:4] in PCAP_MAGICS:
            return _pcap_extent(f, PCAP_MAGICS[head[:4]], len(head), size)
        if head[:4] == PCAPNG_MAGIC:
            f.seek(0)
            return _pcapng_extent(f, size)
    raise NetsynthError(f"{path}: not a pcap or pcapng capture")


def _pcap_extent(f, order: str, head_len: int, size: int) -> Extent:
    if head_len < 24:
        return Extent(0, 0, "incomplete file header")
    pos, packets = 24, 0
    while pos < size:
        header = f.read(16)
        if len(header) < 16:
            return Extent(pos, packets, "incomplete record header")
        incl_len, orig_len = struct.unpack(order + "II", header[8:16])
        if incl_len > MAX_RECORD:
            return Extent(pos, packets, f"implausible record length {incl_len}")
        if pos + 16 + incl_len > size:
            return Extent(pos, packets, "last packet cut short")
        f.seek(incl_len, 1)
        pos, packets = pos + 16 + incl_len, packets + 1
    return Extent(pos, packets)


def _pcapng_extent(f, size: int) -> Extent:
    pos, packets, order = 0, 0, "<"
    while pos < size:
        header = f.read(12)
        if len(header) < 8:
            return Extent(pos, packets, "incomplete block header")
        if header[:4] == PCAPNG_MAGIC:  # a section header fixes the byte order of what follows
            order = "<" if header[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        kind, total = struct.unpack(order + "II", header[:8])
        if total < 12 or total % 4 or pos + total > size:
            return Extent(pos, packets, f"block of implausible length {total}" if pos + total <= size or total < 12
                          else "last block cut short")
        f.seek(pos + total - 4)
        (trailer,) = struct.unpack(order + "I", f.read(4))
        if trailer != total:  # every block repeats its length at its end
            return Extent(pos, packets, "block lengths disagree")
        pos, packets = pos + total, packets + (kind in PACKET_BLOCKS)
    return Extent(pos, packets)


def _prefix_copy(path: Path, end: int, folder: str) -> Path:
    """The intact first `end` bytes of a capture, copied in chunks into `folder`."""
    target = Path(folder) / f"intact{path.suffix or '.pcap'}"
    with open(path, "rb") as src, open(target, "wb") as dst:
        left = end
        while left:
            chunk = src.read(min(left, 1 << 20))
            dst.write(chunk)
            left -= len(chunk)
    return target


def read_capture(path: str, n_packets: int, keep_empty: bool, want_ndpi: bool) -> tuple[list[tuple], str | None]:
    """Biflows of one capture as (sizes, directions, iat_seconds, application_name, (protocol, server port)) tuples, and a note where the
    capture is damaged part-way: its packets before the damage are read (flows that the damage cuts are kept as
    they are, with the packets read), and the note says where reading stopped and what was kept.

    Runs in a worker process (one per file), so it takes and returns plain values.
    """
    p = Path(path)
    extent = intact_extent(p)
    if extent.damage is None:
        return _meter(p, p, n_packets, keep_empty, want_ndpi), None
    where = f"byte {extent.end}, after {extent.packets} packets"
    if not extent.packets:
        raise NetsynthError(f"{p}: no readable packet ({extent.damage} at byte {extent.end})")
    with tempfile.TemporaryDirectory() as folder:
        flows = _meter(p, _prefix_copy(p, extent.end, folder), n_packets, keep_empty, want_ndpi)
    return flows, (f"damaged ({extent.damage}): read up to {where}; kept the {len(flows)} flows of those packets "
                   "(a flow the damage cuts keeps the packets before it)")


def _meter(p: Path, source: Path, n_packets: int, keep_empty: bool, want_ndpi: bool) -> list[tuple]:
    """NFStream's biflows of `source` (the capture `p`, or its intact prefix)."""
    from nfstream import NFStreamer

    splt = n_packets if keep_empty else SPLT_MAX
    try:
        streamer = NFStreamer(source=str(source), statistical_analysis=False, splt_analysis=splt, accounting_mode=3,
                              n_dissections=20 if want_ndpi else 0, n_meters=1)
        flows = []
        for f in streamer:
            k = f.splt_direction.index(-1) if -1 in f.splt_direction else len(f.splt_direction)
            dirs = [1 if d == 0 else -1 for d in f.splt_direction[:k]]
            iat = [ms / 1000.0 for ms in f.splt_piat_ms[:k]]
            flows.append((f.splt_ps[:k], dirs, iat, f.application_name if want_ndpi else None, (f.protocol, f.dst_port)))
    except ValueError as e:
        raise NetsynthError(f"{p}: cannot read capture ({e})") from None
    return flows
