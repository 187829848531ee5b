"""An independent decoder for checking the flow meter: dpkt parses each packet, biflows are keyed by the
unordered 5-tuple and cut at NFStream's idle timeout (120 s), payload = IP payload minus the L4 header."""
from __future__ import annotations

import socket
from collections import Counter

import dpkt

IDLE_TIMEOUT = 120.0


def biflows(path, n_packets=10):
    """Counter of signed first-N non-zero payload sequences, for TCP and UDP flows; and whether the file
    has other IP traffic (whose payload accounting differs between decoders)."""
    flows, last, order, other = {}, {}, [], False
    with open(path, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                continue
            l4 = ip.data
            if isinstance(l4, dpkt.tcp.TCP):
                payload = len(l4.data)
            elif isinstance(l4, dpkt.udp.UDP):
                payload = len(l4.data)
            else:
                other = True
                continue
            fam = socket.AF_INET if isinstance(ip, dpkt.ip.IP) else socket.AF_INET6
            a = (socket.inet_ntop(fam, ip.src), l4.sport)
            b = (socket.inet_ntop(fam, ip.dst), l4.dport)
            key = (type(l4).__name__, frozenset((a, b)) if a != b else (a, b))
            if key in flows and ts - last[key] > IDLE_TIMEOUT:
                order.append(flows.pop(key))
            if key not in flows:
                flows[key] = {"first": a, "packets": []}
            last[key] = ts
            flows[key]["packets"].append(payload if a == flows[key]["first"] else -payload)
    order += flows.values()
    seqs = Counter()
    for fl in order:
        signed = [p for p in fl["packets"] if p != 0][:n_packets]
        if signed:
            seqs[tuple(signed)] += 1
    return seqs, other
