"""A training killed with SIGKILL and resumed gives, bit for bit, the model of an uninterrupted run."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from safetensors.numpy import load_file


def train(demo_file, folder, *extra):
    return [sys.executable, "-m", "netsynth.cli", "train", "cvae", demo_file, "-o", str(folder), "--epochs", "8",
            "--batch-size", "8", "--checkpoint-every", "0", *extra]


def wait_for_epoch(proc, state, epoch: int) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(state.read_text())["epoch"] >= epoch:
                return
        except (OSError, ValueError):
            pass  # not written yet
        time.sleep(0.002)
    pytest.fail("training ended before the kill")


@pytest.mark.parametrize("kill_after, extra", [(2, ()), (2, ("--ema",))])
def test_kill_and_resume_gives_the_uninterrupted_model(demo_flows, tmp_path, kill_after, extra):
    demo_file = str(demo_flows.write(tmp_path / "demo.parquet"))
    whole_run = subprocess.run(train(demo_file, tmp_path / "whole", *extra), check=True, capture_output=True,
                               text=True, timeout=600)

    proc = subprocess.Popen(train(demo_file, tmp_path / "cut", *extra), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for_epoch(proc, tmp_path / "cut" / "checkpoint" / "state.json", kill_after)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL and not (tmp_path / "cut" / "model.safetensors").exists()

    resumed = subprocess.run(train(demo_file, tmp_path / "cut", "--resume", *extra), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed after epoch" in resumed.stderr
    # every epoch after the resume as in the whole run (losses), and the weights of the last epoch and of the best
    def epochs(log: str) -> list[str]:
        return [re.sub(r"  [\d.]+ s", "", line) for line in log.splitlines() if line.startswith("epoch ")]
    assert epochs(resumed.stderr) and set(epochs(resumed.stderr)) <= set(epochs(whole_run.stderr))
    for name in ("checkpoint/model.safetensors", "model.safetensors"):
        whole, cut = load_file(tmp_path / "whole" / name), load_file(tmp_path / "cut" / name)
        assert whole.keys() == cut.keys() and all((whole[k] == cut[k]).all() for k in whole), name


def without_timings(value):
    """results.json without what a clock or the machine decides (seconds, memory, environment)."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items()
                if k not in ("seconds", "environment", "train_seconds") and not k.endswith(("_mb", "_s_per_epoch", "ms_per_flow"))}
    return [without_timings(v) for v in value] if isinstance(value, list) else value


def test_killed_benchmark_resumes_to_the_uninterrupted_results(demo_flows, tmp_path):
    flows = str(demo_flows.write(tmp_path / "demo.parquet"))

    def bench(folder, *extra):
        return [sys.executable, "-m", "netsynth.cli", "benchmark", flows, "-o", str(folder), "--quick", "--models",
                "cvae,markov", "--no-efficiency", *extra]
    subprocess.run(bench(tmp_path / "whole"), check=True, capture_output=True, timeout=600)
    proc = subprocess.Popen(bench(tmp_path / "cut"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = tmp_path / "cut" / "results.json"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if "train:cvae" in json.loads(results.read_text())["steps"]:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the benchmark ended before the kill"
    resumed = subprocess.run(bench(tmp_path / "cut", "--resume"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0 and "[done already] train:cvae" in resumed.stderr, resumed.stderr[-2000:]
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())
    cut = json.loads(results.read_text())
    assert without_timings(cut) == without_timings(whole)
