"""Synthetic flows as captures that any tool reads: `netsynth export FLOWS -o DIR`.

Each flow becomes one conversation between its own client (by default 10.x.y.z, a port of its own, so no two
flows share a 5-tuple) and its class's server (by default 192.0.2.1 for all; `Addresses`): by default TCP, with
a three-way handshake, sequence and acknowledgement numbers that add up, an ACK for every data packet and a FIN
exchange; or UDP datagrams. Payloads are filler bytes (zeros) of exactly the generated lengths; checksums are
computed by scapy. Timestamps follow the flows' inter-arrival times where they have them, else 1 ms between
packets; flows follow one another `gap` seconds apart, or start at a fixed rate. The layout
DIR/<class>/synthetic.pcap is what `netsynth ingest DIR` (labels from folders) reads back.

scapy builds the frames (the field's packet library); the conversation logic (who sends what, with which
numbers) is written here because no library turns a sequence of signed lengths into one.
"""
from __future__ import annotations

import heapq
import ipaddress
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from netsynth.errors import NetsynthError
from netsynth.fileio import atomic_path
from netsynth.flows import FlowSet

MACS = ("02:00:00:00:00:01", "02:00:00:00:00:02")  # client, server
DEFAULT_IAT = 0.001
PROTOCOL_NAMES = {6: "tcp", 17: "udp"}
PORTS = 60000  # client ports per address (1024 and up)


@dataclass(frozen=True)
class Addresses:
    """Where flows go: each flow's client is an address of `clients` and a port of its own (no two flows share a
    5-tuple); each class's server is an address of `servers` (one per class, in turn, when there are fewer)."""
    clients: ipaddress.IPv4Network = ipaddress.ip_network("10.0.0.0/8")
    servers: ipaddress.IPv4Network = ipaddress.ip_network("192.0.2.1/32")

    @classmethod
    def parse(cls, client_net: str | None = None, server_net: str | None = None) -> "Addresses":
        def net(text, option, default):
            try:
                return ipaddress.IPv4Network(text, strict=False) if text else default
            except ValueError as e:
                raise NetsynthError(f"{option}: {e}") from None
        return cls(net(client_net, "--client-net", cls.clients), net(server_net, "--server-net", cls.servers))

    def client(self, index: int) -> tuple[str, int]:
        host, port = divmod(index, PORTS)
        first, count = _hosts(self.clients)
        if host >= count:
            raise NetsynthError(f"--client-net {self.clients} has {count} host address(es): room for {count * PORTS:,} "
                                f"flows, not {index + 1:,}")
        return str(first + host), 1024 + port

    def server(self, code: int) -> str:
        first, count = _hosts(self.servers)
        return str(first + code % count)


def _hosts(net: ipaddress.IPv4Network) -> tuple[ipaddress.IPv4Address, int]:
    """The first host address of `net` and how many it has (all of a /31 or /32; else without network and broadcast)."""
    if net.prefixlen >= 31:
        return net.network_address, net.num_addresses
    return net.network_address + 1, net.num_addresses - 2


def conversation(signed: Iterable[int], gaps: Iterable[float], client: tuple[str, int], server: tuple[str, int],
                 t0: float, proto: str):
    """scapy packets of one flow: signed payload lengths (+ client to server) with the gaps before each."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether

    (cip, cport), (sip, server_port), t = client, server, t0
    seq = {1: 1000, -1: 5000}  # next sequence number of the client (+1) and of the server (-1)
    out = []

    def send(direction: int, flags: str | None, payload: int, at: float):
        src, dst = (cip, sip) if direction > 0 else (sip, cip)
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
           gap: float = 1.0, progress: Callable[[Iterable, int, str], Iterable] | None = None,
           rate: float | None = None, addresses: Addresses = Addresses()) -> dict[str, int]:
    """Write OUT/<class>/synthetic.pcap (or one capture when OUT ends in .pcap); returns flows per capture.
    Flows follow one another `gap` seconds apart, or start `rate` per second (then they overlap, and their
    packets are merged in time order). Each capture is streamed to disk and appears whole or not at all; memory
    holds only the packets of flows still open."""
    from scapy.utils import PcapWriter

    if proto not in ("tcp", "udp"):
        raise NetsynthError(f"--protocol must be tcp or udp, got {proto!r}")
    if rate is not None and not rate > 0:
        raise NetsynthError(f"--rate must be positive, got {rate}")
    out = Path(out)
    one_file = out.suffix == ".pcap"
    groups = {out.name: np.arange(len(flows))} if one_file else \
        {c: np.flatnonzero(flows.codes == k) for k, c in enumerate(flows.classes) if (flows.codes == k).any()}
    track = progress or (lambda it, total, what: it)
    signed, lengths = flows.signed, flows.length
    written, index, t, order = {}, 0, start, itertools.count()
    for name, rows in groups.items():
        target = out if one_file else out / _safe(name) / "synthetic.pcap"
        with atomic_path(target) as tmp:
            writer, pending = PcapWriter(str(tmp), linktype=1, sync=False), []  # pending: (time, order, packet)
            for row in track(rows, len(rows), name):
                t0 = start + index / rate if rate else t
                while pending and pending[0][0] <= t0:
                    writer.write(heapq.heappop(pending)[2])
                n = int(lengths[row])
                gaps = flows.iat[row, :n] if flows.iat is not None else np.full(n, DEFAULT_IAT)
                row_proto, row_port = proto, server_port
                if flows.service is not None:  # the flow's own; a protocol other than TCP or UDP gets `proto`
                    number, row_port = (int(x) for x in flows.service[row])
                    row_proto = PROTOCOL_NAMES.get(number, proto)
                server = (addresses.server(int(flows.codes[row])), row_port)
                packets, end = conversation(signed[row, :n], gaps, addresses.client(index), server, t0, row_proto)
                for p in packets:
                    heapq.heappush(pending, (float(p.time), next(order), p))
                index, t = index + 1, end + gap
            while pending:
                writer.write(heapq.heappop(pending)[2])
            writer.close()
        written[str(target)] = len(rows)
    return written


def _safe(name: str) -> str:
    """A class name as one folder name: path separators and control characters become '_'."""
    cleaned = "".join("_" if ch in "/\\\0" or ord(ch) < 32 else ch for ch in name).strip(".") or "_"
    return cleaned
