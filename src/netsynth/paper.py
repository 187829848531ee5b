"""The reference paper's published figures (Bovenzi et al. 2026, `shared/paper.md`), to print beside ours."""

TSTR_F1 = {  # Table II, Random Forest F1 (%)
    "MIRAGE-2019": {"train on real": 85.84, "cvae": 66.73, "diffusion": 46.83, "llama": 78.78, "mamba": 76.07},
    "CESNET-TLS22-80": {"train on real": 91.80, "cvae": 75.44, "diffusion": 65.84, "llama": 87.43, "mamba": 85.09},
}



def tstr_ratio_target(kind: str) -> float | None:
    """The paper's own TSTR / train-on-real ratio for `kind` on its better dataset: the project's target (issue 9)."""
    ratios = [d[kind] / d["train on real"] for d in TSTR_F1.values() if kind in d]
    return max(ratios) if ratios else None


EFFICIENCY = {  # Table III, one 48 GB datacenter GPU, medians of 10 runs, batch size 1
    "cvae": {"train_s_per_epoch": 22.568, "gen_ms_per_flow": 0.50, "disk_mb": 3.9},
    "diffusion": {"train_s_per_epoch": 117.029, "gen_ms_per_flow": 860.67, "disk_mb": 4.2},
    "llama": {"train_s_per_epoch": 36.810, "gen_ms_per_flow": 31.21, "disk_mb": 7.9},
    "mamba": {"train_s_per_epoch": 108.477, "gen_ms_per_flow": 148.52, "disk_mb": 15.5},
    "llama int8-weight-only": {"gen_ms_per_flow": 45.33, "disk_mb": 3.5},
    "llama int8-dynamic": {"gen_ms_per_flow": 990.04, "disk_mb": 3.4},
}

FINDINGS = {
    "RQ1": "LLaMA and Mamba reach near-zero JSDs; LLaMA has the best Markov JSD, Mamba slightly the lowest leakage; "
           "CVAE matches the length distribution but not finer patterns; NetDiffus-NR is worst on every JSD.",
    "RQ3": "With 5-20 % of the real data, LLaMA and Mamba give up to +40 % F1 on MIRAGE (+10-15 % on CESNET); SMOTE "
           "matches or slightly underperforms real-only; CVAE always helps; NetDiffus-NR helps little or hurts.",
    "RQ4": "Both int8 variants keep fidelity and F1 equal to the float model to two significant figures.",
}
