"""Shared set-up of the benchmarks: the IoT Sentinel split."""
import sys
from pathlib import Path

from netsynth.ingest import ingest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def iot_split():
    """The training and test split of IoT Sentinel, as the README's results use it."""
    folder = SHARED / "iot-sentinel"
    if not folder.is_dir():
        sys.exit(f"{folder} not found: the benchmarks run on the shared IoT Sentinel captures")
    flows, _ = ingest([folder])
    return flows.split(test_size=0.2, seed=0)


def iot_train():
    return iot_split()[0]
