"""What a new user meets on the command line: safe outputs, options that do not apply, one-line errors."""
import numpy as np
import pytest

from netsynth.flows import FlowSet
from test_cli_ingest import error_line, run


@pytest.fixture(scope="module")
def demo_file(demo_flows, tmp_path_factory):
    return str(demo_flows.write(tmp_path_factory.mktemp("messages") / "demo.parquet"))


def test_training_refuses_to_replace_a_model_unless_told(capsys, demo_file, tmp_path):
    model = tmp_path / "m"
    code, out, _ = run(capsys, "train", "markov", demo_file, "-o", str(model))
    assert code == 0 and "trained markov" in out
    before = (model / "model.safetensors").read_bytes()
    code, _, err = run(capsys, "train", "cvae", demo_file, "-o", str(model), "--epochs", "1")
    assert f"{model} already holds a model; use --overwrite to replace it" in error_line(code, err)
    assert (model / "model.safetensors").read_bytes() == before
    assert "--resume" in err  # cvae trains in epochs; markov, in one pass, has no --resume to offer
    code, _, err = run(capsys, "train", "markov", demo_file, "-o", str(model))
    assert error_line(code, err).endswith("already holds a model; use --overwrite to replace it, or choose another folder")
    code, out, _ = run(capsys, "train", "cvae", demo_file, "-o", str(model), "--epochs", "1", "--overwrite")
    assert code == 0 and "trained cvae" in out


def test_epochs_must_be_at_least_one_and_options_a_kind_ignores_are_named(capsys, demo_file, tmp_path):
    code, _, err = run(capsys, "train", "llama", demo_file, "-o", str(tmp_path / "m"), "--epochs", "0")
    assert "epochs must be at least 1, got 0" in error_line(code, err)
    assert not (tmp_path / "m").exists()
    code, out, err = run(capsys, "train", "markov", demo_file, "-o", str(tmp_path / "k"), "--epochs", "3")
    assert code == 0 and "note: markov does not use epochs; ignored" in err and "trained markov" in out


def test_wrong_files_get_a_hint(capsys, demo_file, tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    code, _, err = run(capsys, "train", "markov", str(tmp_path / "t.csv"), "-o", str(tmp_path / "m"))
    assert f"ingest it first: netsynth ingest {tmp_path / 't.csv'} -o flows.parquet" in error_line(code, err)
    code, _, err = run(capsys, "ingest", str(tmp_path / "t.csv"), "-o", str(tmp_path / "f.parquet"))
    assert "which column holds the labels? Name it with --label-from column:NAME" in error_line(code, err)
    (tmp_path / "empty.csv").write_text("")
    code, _, err = run(capsys, "ingest", str(tmp_path / "empty.csv"), "-o", str(tmp_path / "f.parquet"))
    assert error_line(code, err) == f"error: {tmp_path / 'empty.csv'}: empty file"
    code, _, err = run(capsys, "generate", demo_file, "--per-class", "2", "-o", str(tmp_path / "g.parquet"))
    assert "a file, not a model folder" in error_line(code, err)
    code, _, err = run(capsys, "generate", str(tmp_path), "--per-class", "-5", "-o", str(tmp_path / "g.parquet"))
    assert "--per-class must be at least 1, got -5" in error_line(code, err)
    code, _, err = run(capsys, "generate", "--nope")
    assert "(see `netsynth generate --help`)" in error_line(code, err)


def test_a_folder_of_bad_files_says_how_many(capsys, tmp_path):
    for i in range(7):
        (tmp_path / f"bad{i}.pcap").write_bytes(b"not a capture at all")
    code, _, err = run(capsys, "ingest", str(tmp_path), "-o", str(tmp_path / "f.parquet"))
    assert "none of 7 inputs could be read" in error_line(code, err) and "and 4 more" in err


def test_train_help_lists_the_kinds(capsys):
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0 and "llama, mamba" in out and "markov" in out and "[default: 256" in out


def test_ingested_demo_says_it_is_simulated(demo_file):
    provenance = FlowSet.read(demo_file).meta["provenance"]
    assert provenance == {"simulated": True, "lengths": "L4 payload bytes (NFStream flow meter)"}


def test_a_benchmark_on_too_few_captures_names_the_file_and_the_way_out(capsys, demo_flows, tmp_path):
    # three captures (one per class, as in a MIRAGE sample of one file per app) cannot give a split by capture
    few = demo_flows.select(demo_flows.classes[:3])
    few.group = np.array([str(label) for label in few.label], dtype=object)
    path = str(few.write(tmp_path / "few.parquet"))
    code, _, err = run(capsys, "benchmark", path, "-o", str(tmp_path / "out"), "--models", "markov", "--quick")
    line = err.strip().splitlines()[-1]  # after the benchmark's progress line "[time] split ..."
    assert code == 2 and line.startswith(f"error: {path}: 3 captures (groups) are too few to split by capture with test_size 0.2")
    assert "at least 5 are needed" in line and "without --group-column" in line


def test_a_benchmark_on_a_class_of_one_flow_names_the_class_and_the_way_out(capsys, tmp_path):
    flows = FlowSet.from_signed([[100 + i % 7, -60] + [0] * 8 for i in range(12)], ["a"] * 6 + ["b"] * 5 + ["lone"])
    path = str(flows.write(tmp_path / "lone.parquet"))
    code, _, err = run(capsys, "benchmark", path, "-o", str(tmp_path / "out"), "--models", "markov", "--quick")
    line = err.strip().splitlines()[-1]
    assert code == 2 and line.startswith(f"error: {path}: cannot split stratified by class")
    assert "classes ['lone'] have a single flow (netsynth ingest --min-flows 2 drops such classes)" in line
