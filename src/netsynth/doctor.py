"""`netsynth doctor`: what this installation will do, and whether its samplers draw from the right distribution.

Each finding is one line; a problem (a dependency below its declared floor, a sampler that does not match its
full-forward reference) makes the command exit with status 1.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from netsynth.errors import NetsynthError
from netsynth.flows import FlowSet
from netsynth.machine import usable_cores

TOLERANCE = 1e-5  # float32 probabilities: the step decoder and the full pass differ by rounding only


@dataclass
class Finding:
    topic: str
    detail: str
    problem: bool = False


def diagnose() -> list[Finding]:
    return [*dependency_findings(), device_finding(), *sampler_findings()]


def dependency_findings() -> list[Finding]:
    from packaging.requirements import Requirement

    versions = [f"python {platform.python_version()}"]
    try:
        requires = metadata.requires("netsynth") or []
    except metadata.PackageNotFoundError:  # imported from a source tree that was never installed
        return [Finding("dependency", "netsynth is not installed, so its dependency floors cannot be read: "
                                      "pip install -e . in its source tree", True)]
    findings = []
    for line in requires:
        requirement = Requirement(line)
        if requirement.marker is not None:  # the test extra
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            findings.append(Finding("dependency", f"{requirement.name} is not installed (needs {requirement})", True))
            continue
        versions.append(f"{requirement.name} {installed}")
        if not requirement.specifier.contains(installed, prereleases=True):
            findings.append(Finding("dependency", f"{requirement.name} {installed} is outside {requirement}: "
                                                  f"pip install '{requirement}'", True))
    return [Finding("versions", ", ".join(versions)), *findings]


def device_finding() -> Finding:
    import torch

    from netsynth import precision
    from netsynth.models import create
    from netsynth.models.sequence import BF16_MIN_FLOWS
    from netsynth.train import resolve_device

    device = resolve_device("auto")
    what = torch.cuda.get_device_name(0) if device.type == "cuda" else f"{platform.machine()} CPU"
    llama = create("llama")
    used = llama.resolve_precision("auto", device)
    small = ""
    if llama.sampling_precision("auto", device, 1) != used:
        small = f", sampling float32 below {BF16_MIN_FLOWS} flows at a time"
    return Finding("device", f"{device} ({what}), {usable_cores()} usable CPU cores, {torch.get_num_threads()} "
                             f"torch threads; llama's {precision.describe(used, 'auto', device)}{small}")


def sampler_findings(seed: int = 0) -> list[Finding]:
    """Train a tiny model of each sequence kind for a few epochs and compare its sampler with the reference."""
    from netsynth.models import KINDS, create
    from netsynth.models.sequence import sampler_reference_error
    from netsynth.train import resolve_device

    flows = tiny_flows(seed)
    codes = np.arange(64) % len(flows.classes)
    findings = []
    for kind in ("llama", "mamba"):
        model = create(kind, **KINDS[kind].tiny, vocabulary="observed").fit(flows, epochs=5, batch_size=16, lr=1e-2, seed=seed)
        findings += [Finding(kind, note) for note in model.runtime_notes(resolve_device("auto"))]
        try:  # batches, and one flow per call (its own decoder: NumPy on a CPU, CUDA graphs on a GPU)
            error = max(sampler_reference_error(model.module_, model.codec_, codes, seed=seed),
                        sampler_reference_error(model.module_, model.codec_, codes[:8], seed=seed, batch_size=1))
        except NetsynthError as e:
            findings.append(Finding(kind, str(e), True))
            continue
        ok = error <= TOLERANCE
        findings.append(Finding(kind, f"sampler's step decoders against a full forward pass: largest difference "
                                      f"{error:.1e} ({'within' if ok else 'above'} {TOLERANCE:g})", not ok))
    return findings


def tiny_flows(seed: int = 0, n_per_class: int = 40) -> FlowSet:
    """Three classes whose flows differ in length and in which sizes follow which: enough for a context to matter."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for c in range(3):
        for _ in range(n_per_class):
            length = rng.integers(2 + c, 5 + c)
            first = rng.choice([60 + 40 * c, 517])
            signed = [first, -(1400 - 100 * c) if first == 517 else -90] + list(rng.choice([100, -1200], length - 2))
            rows.append(signed + [0] * (8 - length))
            labels.append(f"class{c}")
    return FlowSet.from_signed(np.array(rows), labels)


def report(findings: list[Finding], write=print) -> int:
    for f in findings:
        write(f"{'problem' if f.problem else 'ok':7s} {f.topic}: {f.detail}")
    return 1 if any(f.problem for f in findings) else 0
