"""The registry is the one list of kinds; one interface serves every kind (fit options, sample options).

A kind defined here, outside netsynth, and registered with one line must show up in `netsynth models`, train
and sample through the CLI, and appear in a quick benchmark's report, without any other file knowing it.
"""
import json
import warnings
from dataclasses import dataclass

import numpy as np
import pytest

import netsynth
from netsynth import NetsynthError
from netsynth.models import Kind, register
from netsynth.models.memory import FlowMemory
from netsynth.models.options import NetsynthNote
from netsynth.models.registry import KINDS
from test_cli_ingest import run


@dataclass
class EchoConfig:
    pass


class Echo(FlowMemory):
    """Replays a random training flow of the class: the simplest generator there is."""
    kind = "echo"
    Config = EchoConfig
    description = "replays training flows"

    def _sample(self, codes, seed, options):
        rng = np.random.default_rng(seed)
        rows = [rng.choice(np.flatnonzero(self.codes_ == c)) for c in codes]
        return self._to_flows(self.signed_[rows], codes)


@pytest.fixture
def echo():
    register(Kind("echo", Echo, "Echo", "generative", False))
    yield
    del KINDS["echo"]


@pytest.fixture(scope="module")
def demo_file(demo_flows, tmp_path_factory):
    return str(demo_flows.write(tmp_path_factory.mktemp("registry") / "demo.parquet"))


def test_a_registered_kind_is_listed_trained_sampled_and_benchmarked(echo, capsys, demo_file, tmp_path):
    code, out, _ = run(capsys, "models")
    assert code == 0 and "\necho (" in out and "replays" in out
    code, out, err = run(capsys, "train", "echo", demo_file, "-o", str(tmp_path / "m"), "--epochs", "3")
    assert code == 0 and "trained echo" in out
    assert "note: echo does not use epochs; ignored" in err
    code, out, _ = run(capsys, "generate", str(tmp_path / "m"), "--per-class", "4", "-o", str(tmp_path / "s.parquet"))
    assert code == 0 and "generated 28 flows in 7 classes with echo" in out
    code, out, err = run(capsys, "benchmark", demo_file, "-o", str(tmp_path / "r"), "--models", "echo", "--quick",
                         "--no-efficiency")
    assert code == 0, err
    steps = json.loads((tmp_path / "r" / "results.json").read_text())["steps"]
    assert {"train:echo", "fidelity:echo", "tstr:echo"} <= set(steps)
    assert "| Echo |" in (tmp_path / "r" / "report.md").read_text()


def test_every_kind_takes_the_same_fit_and_sample_options(small_train):
    """One loop over kinds with one set of options: the ones a kind does not use are notes, not errors."""
    for name, kind in KINDS.items():
        model = netsynth.create(name, **kind.tiny)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(small_train, epochs=1, batch_size=64, seed=1, device="cpu")
            flows = model.sample(n_per_class=2, seed=0, temperature=1.0, batch_size=8, device="cpu")
        assert len(flows) == 2 * len(small_train.classes)
        notes = [str(w.message) for w in caught if issubclass(w.category, NetsynthNote)]
        assert all(note.startswith(f"{name} does not use ") for note in notes), notes
        assert bool(notes) == (name not in ("llama", "mamba")), (name, notes)  # the two that use every option given


def test_unknown_options_are_errors_with_the_valid_ones():
    with pytest.raises(NetsynthError, match=r"unknown option\(s\) \['epoch'\]; valid: \['epochs'"):
        netsynth.create("markov").fit(None, epoch=3)


def test_a_model_saved_by_0_1_0_with_its_options_in_the_config_loads(small_train, tmp_path):
    model = netsynth.create("cvae", **KINDS["cvae"].tiny).fit(small_train, epochs=1)
    model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert "epochs" not in config["settings"]  # the config holds what defines the model, not how it was trained
    config["settings"].update(epochs=60, lr=1e-3, device="auto", seed=0)
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    assert netsynth.load(tmp_path / "m").sample(n_per_class=3, seed=2).equals(model.sample(n_per_class=3, seed=2))


def test_a_diffusion_model_saved_before_v_prediction_still_predicts_the_noise(small_train, tmp_path):
    model = netsynth.create("diffusion", **KINDS["diffusion"].tiny, prediction="epsilon").fit(small_train, epochs=1)
    model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["settings"]["prediction"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    back = netsynth.load(tmp_path / "m")
    assert back.config.prediction == "epsilon"
    assert back.sample(n_per_class=2, seed=1, steps=3).equals(model.sample(n_per_class=2, seed=1, steps=3))


def test_a_kind_with_a_bad_role_is_refused():
    with pytest.raises(NetsynthError, match="role must be one of"):
        register(Kind("toaster", Echo, "Toaster", "appliance", False))
