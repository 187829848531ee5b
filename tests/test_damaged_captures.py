"""Captures damaged part-way: the packets before the damage are read, the rest is reported, nothing else happens.

The reference for every case is the same capture written with only the packets before the damage."""
import struct

import numpy as np
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from netsynth.errors import NetsynthError
from netsynth.ingest import ingest
from netsynth.ingest.pcap import intact_extent, read_capture


def packets(n_flows=30):
    out, t = [], 1_600_000_000.0
    for i in range(n_flows):
        for k, direction in enumerate((1, -1, 1)):
            src, dst = ("10.0.0.2", "10.0.0.1") if direction > 0 else ("10.0.0.1", "10.0.0.2")
            sport, dport = (40000 + i, 53) if direction > 0 else (53, 40000 + i)
            p = Ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / (b"q" * (20 + 7 * i + k))
            t += 0.01
            p.time = t
            out.append(p)
    return out


def record_offsets(data: bytes) -> list[int]:
    """Where each record of a little-endian pcap starts (the plain walk the tests trust)."""
    offsets, pos = [], 24
    while pos < len(data):
        offsets.append(pos)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    return offsets


def flows_of(path):
    """(flows as (sizes, directions) lists, the damage note) of one capture, through the flow meter."""
    flows, note = read_capture(str(path), 10, False, False)
    return [(list(sizes), dirs) for sizes, dirs, _, _ in flows], note


@pytest.fixture
def capture(tmp_path):
    pkts = packets()
    folder = tmp_path / "app"
    folder.mkdir()
    wrpcap(str(folder / "c.pcap"), pkts)
    return folder / "c.pcap", pkts


def reference(tmp_path, pkts):
    (tmp_path / "ref" / "app").mkdir(parents=True)
    wrpcap(str(tmp_path / "ref" / "app" / "c.pcap"), pkts)
    return flows_of(tmp_path / "ref" / "app" / "c.pcap")[0]


@pytest.mark.parametrize("case", ["truncated", "junk appended", "damaged length"])
def test_the_packets_before_the_damage_are_read(capture, tmp_path, case):
    path, pkts = capture
    data = path.read_bytes()
    offsets = record_offsets(data)
    k = 50  # the damaged record
    if case == "truncated":
        damaged, kept = data[:offsets[k] + 20], k
    elif case == "junk appended":
        damaged, kept = data + np.random.default_rng(0).bytes(333), len(pkts)
    else:
        damaged = bytearray(data)
        struct.pack_into("<I", damaged, offsets[k] + 8, 0x7FFFFFF0)
        kept = k
    path.write_bytes(bytes(damaged))
    extent = intact_extent(path)
    assert extent.packets == kept and extent.damage is not None
    flows, note = flows_of(path)
    assert flows == reference(tmp_path, pkts[:kept]) and len(flows) == -(-kept // 3)
    assert f"read up to byte {offsets[kept] if kept < len(offsets) else len(data)}, after {kept} packets" in note
    other = tmp_path / "other"
    other.mkdir()
    wrpcap(str(other / "d.pcap"), pkts[:6])
    _, report = ingest([path.parent, other], workers=1)  # the summary names the file and where reading stopped
    assert report.partial == [(str(path), note)] and not report.skipped


def test_pcapng_cut_short_keeps_its_whole_blocks(tmp_path):
    from scapy.utils import wrpcapng
    pkts = packets()
    (tmp_path / "app").mkdir()
    path = tmp_path / "app" / "c.pcapng"
    wrpcapng(str(path), pkts)
    path.write_bytes(path.read_bytes()[:-30])  # into the last packet's block
    flows, note = flows_of(path)
    assert flows == reference(tmp_path, pkts[:-1]) and "last block cut short" in note


def test_a_capture_with_no_readable_packet_is_skipped_whole(capture, tmp_path):
    path, pkts = capture
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 24 + 8, 0xFFFFFFFF)  # the first record's length
    path.write_bytes(bytes(data))
    with pytest.raises(NetsynthError, match=r"c\.pcap: no readable packet \(implausible record length 4294967295 at byte 24\)"):
        ingest([path], workers=1)
    (tmp_path / "ok").mkdir()
    wrpcap(str(tmp_path / "ok" / "d.pcap"), pkts)
    (tmp_path / "more").mkdir()
    wrpcap(str(tmp_path / "more" / "e.pcap"), pkts[:9])
    flows, report = ingest([tmp_path], workers=1)
    assert [p for p, _ in report.skipped] == [str(path)] and flows.classes == ("more", "ok")
