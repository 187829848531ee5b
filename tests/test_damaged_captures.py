"""Captures damaged part-way: the packets before the damage are read, the rest is reported, nothing else happens.

The reference for every case is the same capture written with only the packets before the damage."""
import struct
import subprocess
import sys

import numpy as np
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from corrupt import record_offsets
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


def flows_of(path):
    """(flows as (sizes, directions) lists, the damage note) of one capture, through the flow meter."""
    flows, note = read_capture(str(path), 10, False, False)
    return [(list(sizes), dirs) for sizes, dirs, *_ in flows], note


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


def write_long_capture(path, n_packets: int) -> None:
    """A valid pcap of ten UDP flows and `n_packets` packets, written as raw records (scapy would take minutes)."""
    template = [bytes(Ether() / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=40000 + i, dport=53) / (b"q" * (60 + i)))
                for i in range(10)]
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for k in range(n_packets):
            frame = template[k % 10]
            f.write(struct.pack("<IIII", 1_600_000_000 + k // 1000, k % 1000 * 1000, len(frame), len(frame)) + frame)


def peak_rss_mb(path) -> float:
    code = ("import resource, sys\nfrom netsynth.ingest.pcap import read_capture\n"
            "flows, note = read_capture(sys.argv[1], 10, False, False)\nassert note is None and len(flows) == 10\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    return float(subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                                timeout=300).stdout)


def test_memory_does_not_grow_with_the_packets_of_a_capture(tmp_path):
    write_long_capture(tmp_path / "small.pcap", 20_000)
    write_long_capture(tmp_path / "large.pcap", 400_000)  # 20 times the packets, about 40 MB
    small, large = peak_rss_mb(tmp_path / "small.pcap"), peak_rss_mb(tmp_path / "large.pcap")
    assert large < small + 15, (small, large)  # reading the file into memory would add 40 MB
