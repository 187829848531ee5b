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
    bf16_speedup(1.75)  # AVX512-BF16 without working AMX: trained slower in bf16 than in float32
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


def test_auto_samples_small_requests_in_float32(bf16_speedup, small_train, monkeypatch):
    """bf16 kernels cost more per call than float32 ones: below BF16_MIN_FLOWS flows at a time, auto keeps float32."""
    from netsynth.models import sequence

    bf16_speedup(6.0)
    model = netsynth.create("llama", **TINY["llama"]).fit(small_train, epochs=1, precision="fp32")
    seen = []

    def recording(*args, **kwargs):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32)
        return sample_tokens(*args, **kwargs)

    sample_tokens = sequence.sample_tokens
    monkeypatch.setattr(sequence, "sample_tokens", recording)
    few, many = sequence.BF16_MIN_FLOWS - 1, sequence.BF16_MIN_FLOWS
    model.sample({model.classes_[0]: few}, seed=0)
    model.sample({model.classes_[0]: many}, seed=0)
    model.sample({model.classes_[0]: many}, seed=0, batch_size=few)  # sampled `few` at a time
    model.sample({model.classes_[0]: 1}, seed=0, precision="bf16")  # asked for: kept
    assert seen == [torch.float32, torch.bfloat16, torch.float32, torch.bfloat16]
    assert model.sampling_precision("auto", torch.device("cuda"), few) == "fp32"  # on a GPU too (BF16_MIN_FLOWS)


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


@pytest.fixture
def measurements(monkeypatch, tmp_path):
    """bf16_speedup in a fresh process (its per-process cache cleared), the machine's measurements kept under
    tmp_path, and each measurement the next of `values`; `taken` counts them."""
    values, taken = [2.9, 3.1, 2.8, 3.2], []
    monkeypatch.setenv("NETSYNTH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(precision, "measure_bf16_speedup", lambda: taken.append(1) or values[len(taken) - 1])

    def in_new_process():
        precision.bf16_speedup.cache_clear()
        return precision.bf16_speedup()
    yield in_new_process, taken
    precision.bf16_speedup.cache_clear()


def test_the_speedup_is_measured_once_per_machine_so_every_process_chooses_alike(measurements, monkeypatch):
    """A ratio near the threshold (2.9 and 3.1 around 3) must not choose bf16 in one run and float32 in the next."""
    in_new_process, taken = measurements
    choices = []
    for _ in range(3):
        in_new_process()
        choices.append(precision.resolve("auto", CPU))
    assert choices == ["fp32"] * 3 and len(taken) == 1 and precision.cache_file().is_file()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 97)  # another thread count: measured on its own
    assert in_new_process() == 3.1 and len(taken) == 2


def test_a_kept_speedup_holds_only_for_the_instructions_it_was_measured_with(measurements, monkeypatch):
    """With oneDNN held to AVX2 an AVX512-BF16 CPU emulates bf16 (1 GFLOP/s instead of 935): the measurement kept
    from before must not choose bf16 there."""
    in_new_process, taken = measurements
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    assert in_new_process() == 2.9
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert in_new_process() == 3.1 and len(taken) == 2
    capability = torch.backends.cpu.get_cpu_capability
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")  # ATEN_CPU_CAPABILITY=default
    assert in_new_process() == 2.8 and len(taken) == 3
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", capability)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert in_new_process() == 2.9 and len(taken) == 3  # the first measurement, kept


def test_a_damaged_or_unwritable_cache_costs_a_measurement_not_an_error(measurements, tmp_path, monkeypatch):
    in_new_process, taken = measurements
    precision.cache_file().write_text("{not json")
    assert in_new_process() == 2.9 and in_new_process() == 2.9 and len(taken) == 1  # measured and written again
    monkeypatch.setenv("NETSYNTH_CACHE_DIR", str(tmp_path / "a-file"))
    (tmp_path / "a-file").write_text("")  # the cache folder cannot be made
    assert in_new_process() == 3.1 and in_new_process() == 2.8 and len(taken) == 3
