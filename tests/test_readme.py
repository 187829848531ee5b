"""The README's Python example, run as written on a FlowSet of the demo corpus (any FlowSet must do)."""
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_example_runs_as_written(demo_flows, tmp_path):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    demo_flows.write(tmp_path / "flows.parquet")
    code = code.replace("epochs=10", "epochs=1")  # the same calls; one epoch keeps the suite fast
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.fullmatch(r"500 flows of \S+\n", result.stdout)
    assert (tmp_path / "runs" / "llama" / "config.json").is_file()
    assert "epoch 1/1" in result.stderr  # progress=True reports from Python too
