"""A built-in corpus of SIMULATED captures, for demos and tests: `netsynth demo-data OUT_DIR`.

Nothing here is real traffic. Each simulated application writes real pcap files (crafted with scapy) whose
biflows follow the shape of a protocol: handshakes without payload, request/response sizes, bulk
downloads, constant-rate voice. Like real applications, each one mixes several kinds of flow (its own
service, plus the DNS lookups, TLS requests and QUIC streams that every application makes), so the classes
overlap and a classifier cannot tell every flow apart: on the demo, train-on-real stays well below 100 %
and the generators differ. It exists so that a new user sees the whole pipeline run with no data of
their own and so that tests have deterministic captures with known contents; results on it say nothing
about real networks (use ../shared/data or your own captures for that).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from netsynth.fileio import atomic_path

CLIENT_MAC, SERVER_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
Packets = list[tuple[int, int]]  # (direction +1 client->server / -1, payload bytes)


def _tls_handshake(rng) -> Packets:
    return [(1, int(rng.integers(220, 560))), (-1, 1448), (-1, int(rng.integers(900, 1448))),
            (1, int(rng.choice([93, 126, 158]))), (-1, int(rng.choice([51, 258])))]


def tls_browsing(rng) -> Packets:
    pkts = _tls_handshake(rng)
    for _ in range(int(rng.integers(1, 4))):
        pkts.append((1, int(rng.integers(300, 800))))
        pkts += [(-1, 1448)] * int(rng.integers(0, 3)) + [(-1, int(rng.integers(100, 1448)))]
    return pkts


def video_chunks(rng) -> Packets:
    pkts = _tls_handshake(rng) + [(1, int(rng.integers(350, 520)))]
    return pkts + [(-1, 1448)] * int(rng.integers(6, 20)) + [(-1, int(rng.integers(200, 1448)))]


def dns(rng) -> Packets:
    q = int(rng.integers(28, 64))
    return [(1, q), (-1, q + int(rng.choice([16, 32, 48, 96, 180])))]


def voip_rtp(rng) -> Packets:
    n = int(rng.integers(8, 30))
    return [(int(rng.choice([1, -1])), 172 if rng.random() > 0.08 else 33) for _ in range(n)]


def ssh_interactive(rng) -> Packets:
    pkts = [(-1, int(rng.integers(21, 42))), (1, int(rng.integers(21, 42))), (1, int(rng.integers(1200, 1500))),
            (-1, int(rng.integers(700, 1100))), (1, 48), (-1, int(rng.integers(400, 600))), (1, 16)]
    for _ in range(int(rng.integers(2, 10))):
        pkts += [(1, 36), (-1, 36)]
    return pkts


def mqtt_telemetry(rng) -> Packets:
    pkts = [(1, int(rng.integers(30, 70))), (-1, 4)]
    for _ in range(int(rng.integers(1, 6))):
        pkts += [(1, int(rng.integers(20, 120))), (-1, 4)]
    return pkts + [(1, 2), (-1, 2)]


def quic(rng) -> Packets:
    pkts = [(1, int(rng.integers(1200, 1350))), (-1, 1200), (-1, int(rng.integers(900, 1200))), (1, int(rng.integers(30, 60)))]
    return pkts + [(-1, int(rng.integers(1200, 1252))) for _ in range(int(rng.integers(2, 12)))] + [(1, 33)]


# flow type -> (transport, server port, packet generator)
FLOW_TYPES: dict[str, tuple[str, int, Callable]] = {
    "tls": ("tcp", 443, tls_browsing),
    "video": ("tcp", 443, video_chunks),
    "dns": ("udp", 53, dns),
    "voip": ("udp", 5004, voip_rtp),
    "ssh": ("tcp", 22, ssh_interactive),
    "mqtt": ("tcp", 1883, mqtt_telemetry),
    "quic": ("udp", 443, quic),
}

# simulated application -> share of each flow type among its flows
PROFILES: dict[str, dict[str, float]] = {
    "browser": {"tls": 0.6, "quic": 0.25, "dns": 0.15},
    "video-streaming": {"video": 0.7, "tls": 0.15, "dns": 0.15},
    "voip-app": {"voip": 0.7, "tls": 0.15, "dns": 0.15},
    "remote-shell": {"ssh": 0.8, "dns": 0.2},
    "smart-home": {"mqtt": 0.75, "tls": 0.1, "dns": 0.15},
    "music": {"quic": 0.6, "video": 0.25, "dns": 0.15},
    "news": {"tls": 0.6, "video": 0.25, "dns": 0.15},
}


def flow_packets(transport: str, client: tuple[str, int], server: tuple[str, int], payloads: Packets, t0: float):
    """scapy packets of one biflow: TCP gets a handshake and pure ACKs (zero payload), as real stacks send."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether

    (cip, cport), (sip, sport) = client, server
    out, t = [], t0

    def emit(direction, payload, flags="PA"):
        nonlocal t
        t += 0.002
        src, dst = ((cip, cport), (sip, sport)) if direction > 0 else ((sip, sport), (cip, cport))
        l4 = TCP(sport=src[1], dport=dst[1], flags=flags) if transport == "tcp" else UDP(sport=src[1], dport=dst[1])
        # explicit MACs: scapy would otherwise look up routes for every packet
        macs = (CLIENT_MAC, SERVER_MAC) if direction > 0 else (SERVER_MAC, CLIENT_MAC)
        pkt = Ether(src=macs[0], dst=macs[1]) / IP(src=src[0], dst=dst[0]) / l4 / (b"\x17" * payload)
        pkt.time = t
        out.append(pkt)

    if transport == "tcp":
        emit(1, 0, "S"), emit(-1, 0, "SA"), emit(1, 0, "A")
    for i, (direction, size) in enumerate(payloads):
        emit(direction, size)
        if transport == "tcp" and i % 3 == 2:
            emit(-direction, 0, "A")
    if transport == "tcp":
        emit(1, 0, "FA"), emit(-1, 0, "FA"), emit(1, 0, "A")
    return out, t


def write_demo_data(out_dir: str | Path, flows_per_class: int = 60, files_per_class: int = 10, seed: int = 0) -> dict[str, int]:
    """Write OUT_DIR/<application>/capture-<k>.pcap; returns the number of biflows per class."""
    from scapy.utils import wrpcap

    from netsynth.ingest import SIMULATED_MARKER

    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    counts = {}
    for c, (name, mix) in enumerate(PROFILES.items()):
        types = rng.choice(list(mix), size=flows_per_class, p=list(mix.values()))
        per_file = np.array_split(np.arange(flows_per_class), files_per_class)
        for k, members in enumerate(per_file):
            if not len(members):
                continue
            packets, t = [], 1.7e9 + 3600.0 * (c * files_per_class + k)
            for i in members:
                transport, port, gen = FLOW_TYPES[types[i]]
                client = (f"10.0.{c}.{2 + int(i) % 200}", 40000 + int(i))
                server = (f"192.0.2.{10 + c}", port)
                pkts, t = flow_packets(transport, client, server, gen(rng), t + 1.0)
                packets += pkts
            path = out_dir / name / f"capture-{k}.pcap"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                wrpcap(str(tmp), packets)
        counts[name] = flows_per_class
    (out_dir / SIMULATED_MARKER).write_text("Simulated captures written by `netsynth demo-data`: not real traffic.\n")
    return counts
