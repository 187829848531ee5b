"""Hostile and broken inputs and outputs: one-line errors, nothing partial left, odd names kept intact."""
import json
import resource
import signal
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from netsynth.flows import FlowSet
from test_cli_ingest import error_line, run


def test_parquet_with_foreign_or_damaged_netsynth_metadata(capsys, tmp_path):
    for name, meta in (("garbled", b"{not json"), ("foreign", b'{"classes": 5}'), ("deep", b"[" * 100000)):
        table = pa.table({"a": [1]}).replace_schema_metadata({b"netsynth": meta})
        pq.write_table(table, tmp_path / f"{name}.parquet")
        code, _, err = run(capsys, "inspect", str(tmp_path / f"{name}.parquet"))
        assert f"{name}.parquet: damaged or foreign netsynth metadata" in error_line(code, err)


def test_json_nested_thousands_deep(capsys, tmp_path):
    (tmp_path / "deep.json").write_text("[" * 20000 + "]" * 20000)
    (tmp_path / "deep-mirage.json").write_text('{"flow": ' + '{"a": ' * 20000 + "1" + "}" * 20001)
    code, _, err = run(capsys, "ingest", str(tmp_path / "deep.json"), "-o", str(tmp_path / "o.parquet"))
    assert "deep.json: JSON nested too deeply to be a table" in error_line(code, err)
    code, _, err = run(capsys, "ingest", str(tmp_path / "deep-mirage.json"), "-o", str(tmp_path / "o.parquet"))
    assert "deep-mirage.json: " in error_line(code, err)
    assert not (tmp_path / "o.parquet").exists()


def test_labels_with_separators_newlines_and_non_ascii_survive(capsys, tmp_path):
    labels = ["a/b\\c", "line\nbreak", "Zürich-日本", "comma, \"quote\""]
    flows = FlowSet.from_signed(np.array([[100, -200, 0], [50, 0, 0]] * 8), [x for x in labels for _ in range(4)])
    flows.write(tmp_path / "odd.parquet")
    again = FlowSet.read(tmp_path / "odd.parquet")
    assert again.equals(flows) and set(again.label) == set(labels)
    code, out, _ = run(capsys, "train", "markov", str(tmp_path / "odd.parquet"), "-o", str(tmp_path / "m"))
    assert code == 0
    (tmp_path / "c.csv").write_text("label,count\n" + "".join(f'"{x.replace(chr(34), 2 * chr(34))}",2\n' for x in labels))
    code, out, _ = run(capsys, "generate", str(tmp_path / "m"), "--counts", str(tmp_path / "c.csv"), "-o", str(tmp_path / "g.parquet"))
    assert code == 0 and FlowSet.read(tmp_path / "g.parquet").class_counts() == {x: 2 for x in sorted(labels)}
    code, _, _ = run(capsys, "evaluate", "--real", str(tmp_path / "odd.parquet"), "--train", str(tmp_path / "odd.parquet"),
                     "--synthetic", str(tmp_path / "g.parquet"), "-o", str(tmp_path / "e.json"))
    assert code == 0 and set(json.loads((tmp_path / "e.json").read_text())["per_class"]) == set(labels)
    code, out, _ = run(capsys, "benchmark", str(tmp_path / "odd.parquet"), "-o", str(tmp_path / "r"), "--models",
                       "markov", "--quick", "--no-efficiency")
    steps = json.loads((tmp_path / "r" / "results.json").read_text())["steps"]
    assert code == 0 and set(steps["split"]["train"]) == set(labels) and (tmp_path / "r" / "report.md").is_file()


def test_a_full_disk_leaves_the_previous_output_whole(capsys, demo_flows, tmp_path):
    demo_flows.write(tmp_path / "demo.parquet")
    run(capsys, "train", "markov", str(tmp_path / "demo.parquet"), "-o", str(tmp_path / "m"))
    out = tmp_path / "g.parquet"
    run(capsys, "generate", str(tmp_path / "m"), "--per-class", "1", "-o", str(out))
    before = out.read_bytes()

    def small_disk():  # a file size limit: writes past 4 KB fail with EFBIG, as on a full disk with ENOSPC
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    proc = subprocess.run([sys.executable, "-m", "netsynth.cli", "generate", str(tmp_path / "m"), "--per-class", "3000",
                           "-o", str(out)], preexec_fn=small_disk, capture_output=True, text=True, timeout=300)
    [line] = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and line.startswith(f"error: {out}: cannot write (") and "File too large" in line
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["demo.parquet", "g.parquet", "m"]


def test_an_output_under_a_file_is_refused(capsys, demo_flows, tmp_path):
    demo_flows.write(tmp_path / "demo.parquet")
    (tmp_path / "afile").write_text("x")
    code, _, err = run(capsys, "train", "markov", str(tmp_path / "demo.parquet"), "-o", str(tmp_path / "afile" / "m"))
    assert f"{tmp_path / 'afile' / 'm'}: cannot write here" in error_line(code, err)
    code, _, err = run(capsys, "evaluate", "--real", str(tmp_path / "demo.parquet"), "--train", str(tmp_path / "demo.parquet"),
                       "--synthetic", str(tmp_path / "demo.parquet"), "-o", str(tmp_path / "afile" / "e.json"))
    assert f"{tmp_path / 'afile' / 'e.json'}: cannot write here" in error_line(code, err)
