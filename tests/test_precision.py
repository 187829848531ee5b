"""--precision: bf16 autocast where asked for (or, with auto, where the chip is fast at it and the kind allows it)."""
import numpy as np
import pytest
import torch

import netsynth
from netsynth import NetsynthError, precision
from test_cli_ingest import error_line, run
from test_models import TINY

CPU = torch.device("cpu")


@pytest.fixture
def bf16_speedup(monkeypatch):
    def set_speedup(value):
        monkeypatch.setattr(precision, "bf16_speedup", lambda: value)
    return set_speedup


def test_auto_takes_bf16_only_where_measured_fast_and_for_kinds_that_allow_it(bf16_speedup):
    llama, mamba = netsynth.create("llama"), netsynth.create("mamba")
    bf16_speedup(6.0)  # an AMX core
    assert llama.resolve_precision("auto", CPU) == "bf16" and mamba.resolve_precision("auto", CPU) == "fp32"
    assert mamba.resolve_precision("bf16", CPU) == "bf16"
    bf16_speedup(3.2)  # AVX512-BF16 without working AMX: trained slower in bf16 than in float32
    assert llama.resolve_precision("auto", CPU) == "fp32"
    bf16_speedup(0.01)  # bf16 emulated
    assert llama.resolve_precision("auto", CPU) == "fp32" and llama.resolve_precision("bf16", CPU) == "bf16"


def test_the_measured_speedup_is_a_ratio_of_two_matmul_times():
    assert 0 < precision.bf16_speedup() < 100


def test_bf16_training_runs_the_loss_under_autocast_and_keeps_float32_weights(small_train):
    seen = []
    model = netsynth.create("llama", **TINY["llama"])
    original = type(model)._loss

    def spy(self, module, *batch):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return original(self, module, *batch)

    type(model)._loss = spy
    try:
        model.fit(small_train, epochs=1, precision="bf16")
    finally:
        type(model)._loss = original
    assert model.history_["precision"] == "bf16"
    assert set(seen) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.module_.parameters())


def test_bf16_sampling_keeps_float32_logits_so_top_k_one_has_no_ties(small_train):
    model = netsynth.create("llama", **TINY["llama"]).fit(small_train, epochs=2)
    a = model.sample(n_per_class=3, seed=1, top_k=1, precision="bf16")
    b = model.sample(n_per_class=3, seed=2, top_k=1, precision="bf16")
    assert np.array_equal(a.signed, b.signed)
    fp32 = model.sample(n_per_class=50, seed=0, precision="fp32")
    bf16 = model.sample(n_per_class=50, seed=0, precision="bf16")
    assert bf16.class_counts() == fp32.class_counts()


def test_bad_precision_and_bf16_with_dp_are_one_line_errors(small_train, capsys, tmp_path):
    with pytest.raises(NetsynthError, match="precision must be one of auto, fp32, bf16, got 'fp16'"):
        netsynth.create("cvae").fit(small_train, epochs=1, precision="fp16")
    with pytest.raises(NetsynthError, match="--precision bf16 is not available with --dp-epsilon"):
        netsynth.create("cvae").fit(small_train, epochs=1, precision="bf16", dp_epsilon=4.0)
    path = tmp_path / "train.parquet"
    small_train.write(path)
    code, _, err = run(capsys, "train", "llama", str(path), "-o", str(tmp_path / "m"), "--precision", "fp16")
    assert "precision must be one of auto, fp32, bf16" in error_line(code, err)


def test_the_training_log_says_why_auto_kept_float32():
    from netsynth.models.options import FitOptions

    note = netsynth.create("cvae")._precision_note("fp32", FitOptions(), CPU)
    assert note == "precision fp32 (auto: cvae's bf16 quality has not been measured)"
    assert "DP-SGD" in netsynth.create("llama")._precision_note("fp32", FitOptions(dp_epsilon=1.0), CPU)
    assert netsynth.create("llama")._precision_note("bf16", FitOptions(precision="bf16"), CPU) == "precision bf16"
