"""Export to pcap and back: the same flows through the flow meter, a second decoder that agrees, valid numbers."""
import re
import shutil
import subprocess
from collections import Counter

import dpkt
import numpy as np
import pytest

import netsynth
from decoder import biflows
from netsynth.export import export
from netsynth import NetsynthError
from netsynth.flows import FlowSet
from netsynth.ingest import IngestOptions, ingest
from conftest import SHARED_DATA, requires_shared
from test_cli_ingest import error_line, run


def labelled(flows: FlowSet) -> Counter:
    return Counter(zip(flows.label, flows.sequences()))


def test_generated_flows_round_trip_through_pcap(capsys, demo_flows, tmp_path):
    synth = netsynth.create("markov").fit(demo_flows).sample(n_per_class=15, seed=0)
    synth.write(tmp_path / "synth.parquet")
    code, out, _ = run(capsys, "export", str(tmp_path / "synth.parquet"), "-o", str(tmp_path / "pcaps"))
    assert code == 0 and f"wrote {len(synth)} flows as TCP conversations in 7 capture(s)" in out
    back, report = ingest([tmp_path / "pcaps"], workers=1)
    assert labelled(back) == labelled(synth) and report.dropped_empty == 0
    for c in synth.classes:  # dpkt, another decoder, reads the same flows
        ref, other = biflows(tmp_path / "pcaps" / c / "synthetic.pcap")
        assert not other and ref == Counter(s for label, s in zip(synth.label, synth.sequences()) if label == c)
    code, _, err = run(capsys, "export", str(tmp_path / "synth.parquet"), "-o", str(tmp_path / "pcaps"))
    assert "already holds captures; use --overwrite" in error_line(code, err)


def test_tcp_numbers_and_checksums_add_up(demo_flows, tmp_path):
    flows = demo_flows.take(np.arange(0, len(demo_flows), 9))
    flows.service = None  # every flow as TCP (the default), whatever its captured protocol
    export(flows, tmp_path / "all.pcap")
    next_seq, conversations = {}, set()
    with open(tmp_path / "all.pcap", "rb") as f:
        for _, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            tcp = ip.data
            key = (ip.src, tcp.sport, ip.dst, tcp.dport)
            conversations.add(frozenset([key[:2], key[2:]]))
            if key in next_seq:
                assert tcp.seq == next_seq[key]
            next_seq[key] = tcp.seq + len(tcp.data) + bool(tcp.flags & (dpkt.tcp.TH_SYN | dpkt.tcp.TH_FIN))
            if tcp.flags & dpkt.tcp.TH_ACK and key[2:] + key[:2] in next_seq:
                assert tcp.ack == next_seq[key[2:] + key[:2]]  # acknowledges all the other side sent
            stored = (ip.sum, tcp.sum)
            ip.sum = tcp.sum = 0
            ip.data = tcp
            fresh = dpkt.ip.IP(bytes(ip))
            assert stored == (fresh.sum, fresh.data.sum)
    assert len(conversations) == len(flows)  # no two flows share a 5-tuple


def test_udp_export_of_flows_that_start_upstream(demo_flows, tmp_path):
    up = demo_flows.take(np.flatnonzero(demo_flows.signed[:, 0] > 0))
    up.service = None  # every flow as UDP to port 53
    export(up, tmp_path / "pcaps", proto="udp", server_port=53)
    back, _ = ingest([tmp_path / "pcaps"], workers=1)
    assert labelled(back) == labelled(up) and set(map(tuple, back.service.tolist())) == {(17, 53)}


def test_timed_flows_keep_their_inter_arrival_times_and_services_through_pcap(tmp_path):
    from test_timing import timed_flows
    train = timed_flows(40)
    train.service = np.array([[6, 8080], [6, 22]] * 20 + [[6, 9000]] * 40, np.int32)
    synth = netsynth.create("markov").fit(train, timing=True).sample(n_per_class=10, seed=0)
    export(synth, tmp_path / "pcaps", proto="udp", server_port=1)  # the flows' own services win
    back, _ = ingest([tmp_path / "pcaps"], IngestOptions(n_packets=synth.n_packets), workers=1)
    for c in synth.classes:  # each capture holds its flows one after another, and the meter reports them in order
        a, b = back.select([c]), synth.select([c])
        assert np.array_equal(a.signed, b.signed) and np.array_equal(a.service, b.service)
        # the flow meter reports gaps in whole milliseconds; the capture itself holds them to the microsecond
        assert np.abs(a.iat - b.iat).max() <= 1e-3 + 1e-6
    stamps = []
    with open(tmp_path / "pcaps" / "bulk" / "synthetic.pcap", "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            tcp = dpkt.ethernet.Ethernet(buf).data.data
            if len(tcp.data):
                stamps.append(ts)
    assert stamps == sorted(stamps)
    bulk = synth.select(["bulk"])
    flows_gaps = np.concatenate([bulk.iat[i, 1:bulk.length[i]] for i in range(len(bulk))])
    starts = np.cumsum(bulk.length)[:-1]  # the first packet of each flow follows the previous flow's end
    gaps = np.delete(np.diff(stamps), starts - 1)
    assert np.allclose(gaps, flows_gaps, atol=1.5e-6)


@requires_shared
def test_llama_with_timing_on_real_flows_round_trips_through_pcap(tmp_path):
    from netsynth.ingest import TableColumns
    from netsynth.models.registry import KINDS
    real, _ = ingest([SHARED_DATA / "tiissrc23" / "test.json"], label_from="column:label",
                     columns=TableColumns(sequence="direction_length", timestamp="timestamp"))
    model = netsynth.create("llama", **KINDS["llama"].tiny).fit(real, timing=True, epochs=1, min_steps=100, batch_size=64)
    synth = model.sample(n_per_class=5, seed=0)
    assert synth.iat is not None and (synth.iat[:, 1:][synth.direction[:, 1:] != 0] > 0).any()
    export(synth, tmp_path / "pcaps")
    back, _ = ingest([tmp_path / "pcaps"], IngestOptions(n_packets=synth.n_packets, max_size=1500), workers=1)
    # a gap longer than the flow meter's idle timeout (120 s) ends a flow when read back, as it would on a wire;
    # every other flow comes back whole, with its class and its gaps to the millisecond
    returned = {(label, seq): iat for label, seq, iat in zip(back.label, back.sequences(), back.iat)}
    whole = [i for i in range(len(synth)) if synth.iat[i].max() < 120]
    assert len(whole) >= len(synth) // 2
    for i in whole:
        iat = returned[(synth.label[i], synth.sequences()[i])]
        assert np.abs(iat - synth.iat[i]).max() <= 1e-3 + 1e-6


@pytest.mark.parametrize("kind", ["mamba", "cvae", "diffusion", "smote", "fast-retransmit"])  # llama, markov: above
def test_timed_flows_of_every_kind_round_trip_through_pcap(kind, tmp_path):
    from netsynth.models.registry import KINDS
    from test_timing import timed_flows
    model = netsynth.create(kind, **KINDS[kind].tiny)
    steps = 100 if kind == "mamba" else 1  # mamba learns its gaps; the others draw them from the empirical model
    options = model.used_train_options(dict(timing=True, epochs=1, min_steps=steps, batch_size=32))
    synth = model.fit(timed_flows(40), **options).sample(n_per_class=8, seed=0)
    assert (synth.iat > 0).any()
    export(synth, tmp_path / "pcaps")
    back, _ = ingest([tmp_path / "pcaps"], IngestOptions(n_packets=synth.n_packets, max_size=1500), workers=1)
    # flows come back in capture order; a gap over the meter's idle timeout (120 s) would split a flow, as on a wire
    for c in synth.classes:
        a, b = back.select([c]), synth.select([c])
        assert np.array_equal(a.signed, b.signed) and (b.iat < 120).all()
        assert np.abs(a.iat - b.iat).max() <= 1e-3 + 1e-6


def test_flows_at_a_rate_from_given_networks_overlap_in_time_order(capsys, demo_flows, tmp_path):
    import ipaddress
    flows = demo_flows.take(np.arange(0, len(demo_flows), 7))
    flows.write(tmp_path / "f.parquet")
    code, out, _ = run(capsys, "export", str(tmp_path / "f.parquet"), "-o", str(tmp_path / "all.pcap"), "--rate", "1000",
                       "--client-net", "172.16.0.0/30", "--server-net", "198.51.100.0/29")
    assert code == 0
    stamps, starts, servers = [], {}, {}
    with open(tmp_path / "all.pcap", "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            src, dst = ipaddress.ip_address(ip.src), ipaddress.ip_address(ip.dst)
            client = src if src in ipaddress.ip_network("172.16.0.0/30") else dst
            assert client in ipaddress.ip_network("172.16.0.0/30")
            server = dst if client == src else src
            assert server in ipaddress.ip_network("198.51.100.0/29")
            key = (client, ip.data.sport if client == src else ip.data.dport)
            starts.setdefault(key, ts)
            servers.setdefault(key, server)
            stamps.append(ts)
    assert stamps == sorted(stamps) and len(starts) == len(flows)  # merged in time order; a 5-tuple per flow
    assert np.allclose(np.diff(sorted(starts.values())), 1e-3, atol=2e-6)  # one flow per millisecond
    assert len(set(servers.values())) == 6  # the server of each of 7 classes, in turn among 6 hosts
    ref, other = biflows(tmp_path / "all.pcap")  # interleaved, every flow is still whole
    assert not other and ref == Counter(flows.sequences())
    code, _, err = run(capsys, "export", str(tmp_path / "f.parquet"), "-o", str(tmp_path / "x.pcap"), "--client-net", "10.0.0.300/8")
    assert "--client-net: " in error_line(code, err)
    from netsynth.export import Addresses
    with pytest.raises(NetsynthError, match=r"--client-net 10.0.0.1/32 has 1 host address\(es\): room for 60,000 flows"):
        Addresses.parse("10.0.0.1/32").client(60000)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (.ci/run installs the Debian package)")
def test_tshark_finds_no_malformed_packet_or_bad_checksum(demo_flows, tmp_path):
    synth = netsynth.create("markov").fit(demo_flows, timing=True).sample(n_per_class=5, seed=0)  # TCP and UDP
    export(synth, tmp_path / "all.pcap", rate=100)

    def warnings_of(path):
        checks = [f"-o{p}.check_checksum:TRUE" for p in ("ip", "tcp", "udp")]
        done = subprocess.run(["tshark", "-r", str(path), "-q", *checks, "-z", "expert,warn"], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        # zero filler to port 53 reads as repeated DNS queries (a protocol note about content, not a broken packet)
        return [line for line in done.stdout.splitlines() if re.match(r"\s*\d+\s+(Malformed|Checksum)\s", line)]
    assert warnings_of(tmp_path / "all.pcap") == []
    with open(tmp_path / "all.pcap", "rb") as f, open(tmp_path / "bad.pcap", "wb") as g:  # the check can fail
        writer = dpkt.pcap.Writer(g)
        for i, (ts, buf) in enumerate(dpkt.pcap.Reader(f)):
            writer.writepkt(buf[:30] + bytes([buf[30] ^ 0xFF]) + buf[31:] if i == 3 else buf, ts)  # an IP address
    assert warnings_of(tmp_path / "bad.pcap")
