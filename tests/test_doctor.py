"""netsynth doctor: a healthy installation passes; a dependency below its floor is one problem line and status 1."""
import subprocess
import sys
from importlib import metadata

from netsynth import doctor
from netsynth.models.mamba import mamba_kernel_notes
from test_cli_ingest import run


def test_doctor_checks_both_samplers_against_their_reference(capsys):
    code, out, _ = run(capsys, "doctor")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("ok      versions: python") and "transformers" in lines[0]
    for kind in ("llama", "mamba"):
        line = next(line for line in lines if line.startswith(f"ok      {kind}: sampler's step decoders against a full forward pass"))
        assert "within 1e-05" in line


def test_a_fresh_process_prints_the_findings_and_nothing_else():
    """Libraries' warnings come once per process, so only a fresh one shows them: doctor trains llama and mamba, and
    transformers warns about mamba's CUDA kernels on a CPU too (netsynth says it once, on a GPU only)."""
    out = subprocess.run([sys.executable, "-m", "netsynth.cli", "doctor"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = (out.stdout + out.stderr).splitlines()
    assert lines and all(line.startswith(("ok ", "problem ")) for line in lines), lines


def test_a_dependency_below_its_floor_is_a_problem(monkeypatch):
    real_version = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "5.3.0" if name == "transformers" else real_version(name))
    problems = [f for f in doctor.dependency_findings() if f.problem]
    assert [f.detail for f in problems] == ["transformers 5.3.0 is outside transformers>=5.4: pip install 'transformers>=5.4'"]
    lines = []
    assert doctor.report(problems, write=lines.append) == 1 and lines[0].startswith("problem dependency: transformers")


def test_a_source_tree_that_was_never_installed_is_a_problem_not_a_traceback(monkeypatch):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "requires", not_installed)
    [finding] = doctor.dependency_findings()
    assert finding.problem and finding.detail.startswith("netsynth is not installed") and "pip install -e ." in finding.detail


def test_mamba_without_its_kernels_says_so_on_a_gpu_only(monkeypatch):
    import importlib.util
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert mamba_kernel_notes("cpu") == []
    assert mamba_kernel_notes("cuda") == ["mamba: CUDA kernels ['mamba_ssm', 'causal_conv1d'] not installed, using "
                                          "transformers' slower PyTorch path (pip install mamba-ssm causal-conv1d for the fast one)"]
