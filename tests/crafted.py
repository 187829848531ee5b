"""A scapy-crafted capture whose flows are known exactly: the fixture for the flow-meter tests."""
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

C, S = "10.1.0.2", "10.1.0.1"
MACS = ("02:00:00:00:00:01", "02:00:00:00:00:02")


def _pkt(src, dst, sport, dport, proto, payload, flags="PA"):
    l4 = TCP(sport=sport, dport=dport, flags=flags) if proto == "tcp" else UDP(sport=sport, dport=dport)
    mac = MACS if src == C else MACS[::-1]
    return Ether(src=mac[0], dst=mac[1]) / IP(src=src, dst=dst) / l4 / (b"x" * payload)


def write_crafted(path):
    """Returns {name: (signed payloads with zeros, signed after dropping zeros)} of what was written."""
    t = 1_600_000_000.0
    packets, flows = [], {}

    def flow(name, proto, sport, dport, spec):
        nonlocal t
        signed = []
        for direction, payload, *flags in spec:
            src, dst, sp, dp = (C, S, sport, dport) if direction > 0 else (S, C, dport, sport)
            p = _pkt(src, dst, sp, dp, proto, payload, *(flags or ["PA"]))
            t += 0.01
            p.time = t
            packets.append(p)
            signed.append(direction * payload if payload else 0 * direction)
        flows[name] = spec
        t += 1

    flow("tcp", "tcp", 50000, 443, [(1, 0, "S"), (-1, 0, "SA"), (1, 0, "A"), (1, 100), (-1, 200), (1, 0, "A"),
                                    (-1, 1448), (1, 50), (1, 0, "FA"), (-1, 0, "FA")])
    flow("udp", "udp", 50001, 53, [(1, 60), (-1, 120)])
    flow("long", "udp", 50002, 5004, [((-1) ** i, 10 + i) for i in range(15)])
    flow("jumbo", "udp", 50003, 9000, [(1, 3000), (-1, 40)])
    flow("empty", "tcp", 50004, 80, [(1, 0, "S"), (-1, 0, "R")])
    wrpcap(str(path), packets)
    return flows
