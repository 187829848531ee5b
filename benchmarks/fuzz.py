"""Fuzz benchmark: real IoT Sentinel captures corrupted seven ways (tests/corrupt.py), each ingested beside two
intact captures. Counts tracebacks, hangs and crashes (none allowed), and for the truncated, junk-appended and
damaged-length cases the share of the packets before the damage that were read (against the undamaged original).

    python benchmarks/fuzz.py [--files 1000] [--seed 0]
"""
import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import SHARED

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from corrupt import CORRUPTIONS, record_offsets  # noqa: E402

ONE = r'''
import sys
from netsynth.errors import NetsynthError
from netsynth.ingest import ingest
try:
    flows, report = ingest(sys.argv[1:], workers=1)
    print("partly" if report.partial else "skipped" if report.skipped else "read")
except NetsynthError as e:
    print("refused", e)
'''


def packets_before(original: bytes, at: int | None) -> int:
    """Records of the original that end at or before byte `at` (all of them where `at` is None)."""
    offsets = record_offsets(original) + [len(original)]
    return sum(1 for start, end in zip(offsets, offsets[1:]) if at is None or end <= at)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from netsynth.ingest.pcap import intact_extent

    captures = sorted((SHARED / "iot-sentinel").glob("*/*.pcap"))
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(captures), size=args.files, replace=args.files > len(captures))
    names = list(CORRUPTIONS)
    outcomes, kept, before = collections.Counter(), collections.Counter(), collections.Counter()
    failures = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for clean, source in (("clean-a", captures[0]), ("clean-b", captures[-1])):
            (root / clean).mkdir()
            shutil.copy(source, root / clean / "c.pcap")
        for i, index in enumerate(chosen):
            name = names[i % len(names)]
            original = captures[index].read_bytes()
            damaged, at = CORRUPTIONS[name](original, rng)
            folder = root / "x"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            (folder / "f.pcap").write_bytes(damaged)
            try:
                proc = subprocess.run([sys.executable, "-c", ONE, str(folder), str(root / "clean-a"), str(root / "clean-b")],
                                      capture_output=True, text=True, timeout=60)
            except subprocess.TimeoutExpired:
                outcomes[name, "hang"] += 1
                continue
            if proc.returncode < 0:
                outcomes[name, "crash"] += 1
            elif proc.returncode != 0 or not proc.stdout:
                outcomes[name, "traceback"] += 1
                failures.append(f"{captures[index]} {name}: {proc.stderr[-500:]}")
            else:
                outcomes[name, proc.stdout.split()[0]] += 1
            if name in ("truncated", "junk appended", "damaged length"):
                before[name] += packets_before(original, at)
                try:
                    kept[name] += intact_extent(folder / "f.pcap").packets
                except Exception:  # counted above as the ingest outcome
                    pass
    print(f"{args.files} corrupted captures of {len(captures)} IoT Sentinel pcaps (seed {args.seed}), "
          f"{time.perf_counter() - start:.0f} s")
    print(f"{'corruption':16s} {'files':>5s} {'read':>5s} {'partly':>6s} {'skipped':>7s} {'refused':>7s} "
          f"{'traceback':>9s} {'hang':>4s} {'crash':>5s}  packets before the damage read")
    for name in names:
        row = [outcomes[name, k] for k in ("read", "partly", "skipped", "refused", "traceback", "hang", "crash")]
        share = f"{100 * kept[name] / before[name]:.1f} % ({kept[name]} of {before[name]})" if before[name] else "-"
        print(f"{name:16s} {sum(row):5d} {row[0]:5d} {row[1]:6d} {row[2]:7d} {row[3]:7d} {row[4]:9d} {row[5]:4d} "
              f"{row[6]:5d}  {share}")
    for failure in failures[:5]:
        print(failure)


if __name__ == "__main__":
    main()
