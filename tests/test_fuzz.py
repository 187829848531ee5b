"""Seeded fuzzing of captures: every corrupted capture is read (whole or in part) or reported, never a traceback,
a hang or a crash. Runs in a child process, so that a crash of the flow meter or a hang fails the test."""
import json
import subprocess
import sys
from pathlib import Path

FUZZ = r'''
import json, shutil, sys, traceback
from pathlib import Path
import numpy as np
sys.path.insert(0, sys.argv[2])
from corrupt import CORRUPTIONS
from crafted import write_crafted
from netsynth.errors import NetsynthError
from netsynth.ingest import ingest

root = Path(sys.argv[1])
for clean in ("clean", "also-clean"):  # two intact classes, so that a skipped capture leaves a valid corpus
    (root / clean).mkdir()
    write_crafted(root / clean / "c.pcap")
original = (root / "clean" / "c.pcap").read_bytes()
outcome = {"read": 0, "partly": 0, "skipped": 0, "failures": []}
for name, corrupt in CORRUPTIONS.items():
    for seed in range(20):
        folder = root / "x"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        damaged, _ = corrupt(original, np.random.default_rng(seed))
        (folder / "f.pcap").write_bytes(damaged)
        try:
            flows, report = ingest([folder, root / "clean", root / "also-clean"], workers=1)
            kind = "skipped" if report.skipped else "partly" if report.partial else "read"
            outcome[kind] += 1
        except NetsynthError as e:
            outcome["failures"].append(f"{name} {seed}: whole ingest refused: {e}")
        except Exception:
            outcome["failures"].append(f"{name} {seed}: {traceback.format_exc()}")
print(json.dumps(outcome))
'''


def test_corrupted_captures_are_read_or_reported(tmp_path):
    tests = Path(__file__).resolve().parent
    proc = subprocess.run([sys.executable, "-c", FUZZ, str(tmp_path), str(tests)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]  # a crash (signal) or an error outside ingest
    outcome = json.loads(proc.stdout.splitlines()[-1])
    assert outcome["failures"] == []
    assert outcome["read"] + outcome["partly"] + outcome["skipped"] == 7 * 20
    assert outcome["partly"] >= 20 and outcome["skipped"] >= 20  # the cases exist: truncations, pcapng magic
