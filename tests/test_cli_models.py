"""train, generate, augment and models as a user runs them; bad input gives one line and a non-zero exit."""
import pytest

from netsynth import FlowSet
from test_cli_ingest import error_line, run

TINY_LLAMA = ["--epochs", "1", "--set", "hidden_size=32", "--set", "intermediate_size=64",
              "--set", "num_hidden_layers=1", "--set", "num_attention_heads=2"]


@pytest.fixture(scope="module")
def demo_file(demo_flows, tmp_path_factory):
    return str(demo_flows.write(tmp_path_factory.mktemp("cli") / "demo.parquet"))


@pytest.fixture(scope="module")
def llama_dir(demo_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "llama"
    from netsynth.cli import main
    with pytest.raises(SystemExit) as e:
        main(["train", "llama", demo_file, "-o", str(out), *TINY_LLAMA])
        raise SystemExit(0)
    assert e.value.code == 0
    return str(out)


def test_train_writes_a_model_folder_with_its_checkpoint(llama_dir):
    from pathlib import Path
    names = sorted(p.name for p in Path(llama_dir).iterdir() if p.name != ".netsynth.lock")  # the folder lock stays
    assert names == ["checkpoint", "config.json", "model.safetensors"]


def test_generate_per_class_like_and_counts(capsys, llama_dir, demo_file, tmp_path):
    code, out, _ = run(capsys, "generate", llama_dir, "--per-class", "4", "-o", str(tmp_path / "a.parquet"), "--temperature", "0.8")
    assert code == 0 and "generated 28 flows in 7 classes" in out
    code, _, _ = run(capsys, "generate", llama_dir, "--like", demo_file, "-o", str(tmp_path / "b.parquet"))
    assert code == 0 and FlowSet.read(tmp_path / "b.parquet").class_counts() == FlowSet.read(demo_file).class_counts()
    (tmp_path / "c.csv").write_text("label,count\nremote-shell,3\nsmart-home,2\n")
    code, out, _ = run(capsys, "generate", llama_dir, "--counts", str(tmp_path / "c.csv"), "-o", str(tmp_path / "c.parquet"))
    counts = FlowSet.read(tmp_path / "c.parquet").class_counts()
    assert "generated 5 flows in 2 classes" in out  # classes asked for, not every class the model knows
    assert code == 0 and counts["remote-shell"] == 3 and counts["smart-home"] == 2 and sum(counts.values()) == 5


def test_counts_with_an_unknown_class(capsys, llama_dir, tmp_path):
    (tmp_path / "c.csv").write_text("label,count\nremote-shell,3\nToaster,2\n")
    code, _, err = run(capsys, "generate", llama_dir, "--counts", str(tmp_path / "c.csv"), "-o", str(tmp_path / "o.parquet"))
    assert "class(es) ['Toaster'] were not in the training data of this llama model" in error_line(code, err)
    assert not (tmp_path / "o.parquet").exists()


def test_augment_tops_every_class_up_to_the_majority(capsys, demo_file, tmp_path):
    small = FlowSet.read(demo_file).subsample(0.25, seed=0)
    small.write(tmp_path / "small.parquet")
    for method in ("smote", "fast-retransmit"):
        code, _, _ = run(capsys, "augment", str(tmp_path / "small.parquet"), "--method", method,
                         "--to-majority-of", demo_file, "-o", str(tmp_path / f"{method}.parquet"))
        result = FlowSet.read(tmp_path / f"{method}.parquet")
        assert code == 0 and set(result.class_counts().values()) == {24}


def test_bad_model_settings_kind_and_device(capsys, demo_file, tmp_path):
    code, _, err = run(capsys, "train", "llama", demo_file, "-o", str(tmp_path / "m"), "--set", "hidden=3")
    assert "unknown setting(s) ['hidden'] for llama; valid:" in error_line(code, err)
    code, _, err = run(capsys, "train", "gpt", demo_file, "-o", str(tmp_path / "m"))
    assert "unknown model kind 'gpt'; known kinds: cvae, diffusion, fast-retransmit, llama, mamba, markov, smote" in error_line(code, err)
    import torch
    if not torch.cuda.is_available():
        code, _, err = run(capsys, "train", "cvae", demo_file, "-o", str(tmp_path / "m"), "--device", "cuda")
        assert "no CUDA GPU is available" in error_line(code, err)
    assert not (tmp_path / "m" / "config.json").exists()


def test_generate_from_a_foreign_folder(capsys, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("hi")
    code, _, err = run(capsys, "generate", str(tmp_path / "x"), "--per-class", "2", "-o", str(tmp_path / "o.parquet"))
    assert "not a netsynth model folder" in error_line(code, err)


def test_models_lists_every_kind(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0 and all(k in out for k in ("llama", "mamba", "diffusion", "cvae", "markov", "smote", "fast-retransmit"))


def test_distributed_training_with_two_processes(demo_file, tmp_path):
    """The same `netsynth train` under torchrun: two CPU processes (gloo), one log, one saved model."""
    import subprocess
    import sys

    import netsynth
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "netsynth.cli", "train", "cvae", demo_file, "-o", str(tmp_path / "m"), "--epochs", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("trained cvae") == 1 and proc.stderr.count("epoch 2/2") == 1
    single = netsynth.create("cvae").fit(FlowSet.read(demo_file), epochs=2)
    distributed = netsynth.load(tmp_path / "m")
    assert not (single._state()["to_value.weight"] == distributed._state()["to_value.weight"]).all()
    assert len(distributed.sample(n_per_class=2, seed=0)) == 2 * len(distributed.classes_)
