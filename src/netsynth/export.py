"""Synthetic flows as captures that any tool reads: `netsynth export FLOWS -o DIR`.

Each flow becomes one conversation between its own client (10.x.y.z, a port of its own, so no two flows share a
5-tuple) and a server (192.0.2.1): by default TCP, with a three-way handshake, sequence and acknowledgement
numbers that add up, an ACK for every data packet and a FIN exchange; or UDP datagrams. Payloads are filler
bytes (zeros) of exactly the generated lengths; checksums are computed by scapy. Timestamps follow the flows'
inter-arrival times where they have them, else 1 ms between packets; flows start `gap` seconds apart. The
layout DIR/<class>/synthetic.pcap is what `netsynth ingest DIR` (labels from folders) reads back.

scapy builds the frames (the field's packet library); the conversation logic (who sends what, with which
numbers) is written here because no library turns a sequence of signed lengths into one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from netsynth.errors import NetsynthError
from netsynth.fileio import atomic_path
from netsynth.flows import FlowSet

SERVER = "192.0.2.1"
MACS = ("02:00:00:00:00:01", "02:00:00:00:00:02")  # client, server
DEFAULT_IAT = 0.001
PROTOCOL_NAMES = {6: "tcp", 17: "udp"}


def client_address(index: int) -> tuple[str, int]:
    """A distinct (address, port) per flow: 60,000 ports per address, addresses counted up in 10.0.0.0/8."""
    host, port = divmod(index, 60000)
    if host >= 2**24 - 2:
        raise NetsynthError("more than 10^12 flows: out of client addresses")
    host += 1
    return f"10.{host >> 16 & 255}.{host >> 8 & 255}.{host & 255}", 1024 + port


def conversation(signed: Iterable[int], gaps: Iterable[float], index: int, t0: float, server_port: int, proto: str):
    """scapy packets of one flow: signed payload lengths (+ client to server) with the gaps before each."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether

    (cip, cport), t = client_address(index), t0
    seq = {1: 1000, -1: 5000}  # next sequence number of the client (+1) and of the server (-1)
    out = []

    def send(direction: int, flags: str | None, payload: int, at: float):
        src, dst = (cip, SERVER) if direction > 0 else (SERVER, cip)
        sport, dport = (cport, server_port) if direction > 0 else (server_port, cport)
        macs = MACS if direction > 0 else MACS[::-1]
        if proto == "udp":
            l4 = UDP(sport=sport, dport=dport)
        else:
            l4 = TCP(sport=sport, dport=dport, flags=flags, seq=seq[direction],
                     ack=seq[-direction] if "A" in flags else 0)
            seq[direction] += payload + (1 if ("S" in flags or "F" in flags) else 0)
        p = Ether(src=macs[0], dst=macs[1]) / IP(src=src, dst=dst) / l4 / (b"\0" * payload)
        p.time = at
        out.append(p)

    if proto == "tcp":
        send(1, "S", 0, t)
        send(-1, "SA", 0, t + 1e-4)
        send(1, "A", 0, t + 2e-4)
        t += 2e-4
    signed, gaps = list(signed), [float(g) for g in gaps]
    for k, (value, gap) in enumerate(zip(signed, gaps)):
        t += gap
        direction = 1 if value > 0 else -1
        send(direction, "PA", abs(int(value)), t)
        if proto == "tcp":  # the ACK before the next packet, so that the capture stays in time order
            send(-direction, "A", 0, t + min(1e-5, gaps[k + 1] / 2 if k + 1 < len(gaps) else 1e-5))
    if proto == "tcp":
        send(1, "FA", 0, t + 2e-4)
        send(-1, "FA", 0, t + 3e-4)
        send(1, "A", 0, t + 4e-4)
    return out, t + 4e-4


def export(flows: FlowSet, out: str | Path, proto: str = "tcp", server_port: int = 443, start: float = 1.7e9,
           gap: float = 1.0, progress: Callable[[Iterable, int, str], Iterable] | None = None) -> dict[str, int]:
    """Write OUT/<class>/synthetic.pcap (or one capture when OUT ends in .pcap); returns flows per capture.
    Each capture is streamed to disk flow by flow and appears whole or not at all."""
    from scapy.utils import PcapWriter

    if proto not in ("tcp", "udp"):
        raise NetsynthError(f"--protocol must be tcp or udp, got {proto!r}")
    out = Path(out)
    one_file = out.suffix == ".pcap"
    groups = {out.name: np.arange(len(flows))} if one_file else \
        {c: np.flatnonzero(flows.codes == k) for k, c in enumerate(flows.classes) if (flows.codes == k).any()}
    track = progress or (lambda it, total, what: it)
    signed, lengths = flows.signed, flows.length
    written, index, t = {}, 0, start
    for name, rows in groups.items():
        target = out if one_file else out / _safe(name) / "synthetic.pcap"
        with atomic_path(target) as tmp:
            writer = PcapWriter(str(tmp), linktype=1, sync=False)
            for row in track(rows, len(rows), name):
                n = int(lengths[row])
                gaps = flows.iat[row, :n] if flows.iat is not None else np.full(n, DEFAULT_IAT)
                row_proto, row_port = proto, server_port
                if flows.service is not None:  # the flow's own; a protocol other than TCP or UDP gets `proto`
                    number, row_port = (int(x) for x in flows.service[row])
                    row_proto = PROTOCOL_NAMES.get(number, proto)
                packets, end = conversation(signed[row, :n], gaps, index, t, row_port, row_proto)
                writer.write(packets)
                index, t = index + 1, end + gap
            writer.close()
        written[str(target)] = len(rows)
    return written


def _safe(name: str) -> str:
    """A class name as one folder name: path separators and control characters become '_'."""
    cleaned = "".join("_" if ch in "/\\\0" or ord(ch) < 32 else ch for ch in name).strip(".") or "_"
    return cleaned
