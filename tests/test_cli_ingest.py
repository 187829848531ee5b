"""The ingest and inspect commands as a user runs them, bad input included: one line, non-zero exit."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from crafted import write_crafted
from netsynth import FlowSet
from netsynth.cli import main


def run(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def error_line(code, err):
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_ingest_then_inspect(capsys, demo_dir, tmp_path):
    out = tmp_path / "flows.parquet"
    code, stdout, _ = run(capsys, "ingest", str(demo_dir), "-o", str(out))
    assert code == 0 and "kept 168 flows in 7 classes" in stdout.replace("\n", " ")
    code, stdout, _ = run(capsys, "inspect", str(out), "--plot", str(tmp_path / "p.png"))
    assert code == 0 and "voip" in stdout and (tmp_path / "p.png").stat().st_size > 1000


def test_missing_path(capsys, tmp_path):
    code, _, err = run(capsys, "ingest", str(tmp_path / "nope"), "-o", str(tmp_path / "o.parquet"))
    assert "nope: no such file or folder" in error_line(code, err)


def test_names_print_as_they_are(capsys, tmp_path):
    """rich turns ":llama:" into an emoji unless told not to: a file name, or the benchmark's step tstr:llama:seed1."""
    code, _, err = run(capsys, "ingest", str(tmp_path / ":llama:"), "-o", str(tmp_path / "o.parquet"))
    assert ":llama:: no such file or folder" in error_line(code, err)


def test_empty_folder(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "ingest", str(tmp_path / "empty"), "-o", str(tmp_path / "o.parquet"))
    assert "empty: folder holds no files" in error_line(code, err)


def test_file_that_is_not_a_capture(capsys, tmp_path):
    (tmp_path / "x.pcap").write_text("hello, not a capture\n")
    code, _, err = run(capsys, "ingest", str(tmp_path / "x.pcap"), "-o", str(tmp_path / "o.parquet"))
    assert "x.pcap: not a pcap or pcapng capture" in error_line(code, err)
    assert not (tmp_path / "o.parquet").exists()


def test_capture_with_no_readable_packet_alone_is_fatal(capsys, tmp_path):
    write_crafted(tmp_path / "t.pcap")
    (tmp_path / "t.pcap").write_bytes((tmp_path / "t.pcap").read_bytes()[:30])
    code, _, err = run(capsys, "ingest", str(tmp_path / "t.pcap"), "-o", str(tmp_path / "o.parquet"))
    assert "t.pcap: no readable packet (incomplete record header at byte 24)" in error_line(code, err)
    assert not (tmp_path / "o.parquet").exists()


def test_damaged_captures_among_many_are_named(capsys, tmp_path):
    for name in ("a", "b", "c", "d"):
        (tmp_path / name).mkdir()
        write_crafted(tmp_path / name / "f.pcap")
    (tmp_path / "c" / "f.pcap").write_bytes((tmp_path / "c" / "f.pcap").read_bytes()[:-5])
    (tmp_path / "d" / "f.pcap").write_bytes((tmp_path / "d" / "f.pcap").read_bytes()[:30])
    code, stdout, err = run(capsys, "ingest", str(tmp_path), "-o", str(tmp_path / "o.parquet"), "--workers", "1")
    assert code == 0 and "partly read" in err and "c/f.pcap: damaged (last packet cut short)" in err
    assert "skipped" in err and "d/f.pcap: no readable packet" in err
    assert "read 3 inputs (1 partly), skipped 1" in stdout
    assert FlowSet.read(tmp_path / "o.parquet").classes == ("a", "b", "c")


def test_mirage_without_packet_data(capsys, tmp_path):
    doc = {"10.0.0.1,1234,10.0.0.2,443,6": {"flow_metadata": {"BF_label": "app"}}}
    (tmp_path / "m.json").write_text(json.dumps(doc))
    code, _, err = run(capsys, "ingest", str(tmp_path / "m.json"), "-o", str(tmp_path / "o.parquet"))
    assert "m.json: biflow '10.0.0.1,1234,10.0.0.2,443,6' has no packet_data" in error_line(code, err)


def test_table_without_the_named_column(capsys, tmp_path):
    pd.DataFrame({"seq": [[1, -2]], "label": ["a"]}).to_json(tmp_path / "t.json", orient="records")
    code, _, err = run(capsys, "ingest", str(tmp_path / "t.json"), "--sequence-column", "lengths",
                       "--label-from", "column:label", "-o", str(tmp_path / "o.parquet"))
    assert "t.json: no column 'lengths'" in error_line(code, err)


def test_label_column_with_a_single_class(capsys, tmp_path):
    pd.DataFrame({"seq": [[1, -2], [3]], "label": ["a", "a"]}).to_json(tmp_path / "t.json", orient="records")
    code, _, err = run(capsys, "ingest", str(tmp_path / "t.json"), "--sequence-column", "seq",
                       "--label-from", "column:label", "-o", str(tmp_path / "o.parquet"))
    assert "t.json: labels have a single class ('a')" in error_line(code, err)


def test_every_flow_filtered_out(capsys, tmp_path):
    pd.DataFrame({"seq": [[0, 0], [0]], "label": ["a", "b"]}).to_json(tmp_path / "t.json", orient="records")
    code, _, err = run(capsys, "ingest", str(tmp_path / "t.json"), "--sequence-column", "seq",
                       "--label-from", "column:label", "-o", str(tmp_path / "o.parquet"))
    assert "every flow was filtered out: 2 flows seen, 2 had no packet left" in error_line(code, err)
    assert not (tmp_path / "o.parquet").exists()


def test_failed_ingest_keeps_the_previous_output_whole(capsys, tmp_path, demo_flows):
    out = tmp_path / "o.parquet"
    demo_flows.write(out)
    before = out.read_bytes()
    run(capsys, "ingest", str(tmp_path / "missing"), "-o", str(out))
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["o.parquet"]


def test_console_script_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "netsynth.cli", "ingest", str(tmp_path / "nope"), "-o", "x.parquet"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: {tmp_path / 'nope'}: no such file or folder"
