"""Ingest speed on the IoT Sentinel captures, beside a plain NFStream read of the same files in the same run.

    python benchmarks/ingest.py [FOLDER]

The reference reads every capture with an NFStreamer without statistics or nDPI dissection, one file after
another, and only counts flows and packets: the cost of the flow meter itself. netsynth's ingest adds the splt analysis, filtering,
labels, groups and building the FlowSet, and spreads files over all cores.
"""
import os
import sys
import time
from pathlib import Path

from nfstream import NFStreamer

from netsynth.ingest import ingest

folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data/iot-sentinel")
files = sorted(folder.rglob("*.pcap"))

t0 = time.perf_counter()
packets = flows_meter = 0
for f in files:
    for flow in NFStreamer(source=str(f), statistical_analysis=False, n_dissections=0, n_meters=1):
        packets += flow.bidirectional_packets
        flows_meter += 1
plain = time.perf_counter() - t0

t0 = time.perf_counter()
flowset, report = ingest([folder])
ours = time.perf_counter() - t0

print(f"{len(files)} captures, {packets} packets in {flows_meter} biflows; {os.cpu_count()} cores")
print(f"plain NFStream read, serial: {plain:6.2f} s  {packets / plain:9.0f} packets/s  {flows_meter / plain:7.0f} flows/s")
print(f"netsynth ingest, parallel:    {ours:6.2f} s  {packets / ours:9.0f} packets/s  {report.flows_seen / ours:7.0f} flows/s"
      f"  ({len(flowset)} flows kept)")
print(f"ratio plain / ingest: {plain / ours:.2f}")
