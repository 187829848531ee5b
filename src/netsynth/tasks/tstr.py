"""Train on synthetic, test on real (TSTR): a bounded Random Forest's macro F1 on the real test split."""
from __future__ import annotations

import numpy as np

from netsynth.flows import FlowSet

# Bounded so that a forest on tens of classes stays in the tens of MB (an unbounded one can reach GBs).
FOREST = {"n_estimators": 100, "max_depth": 20, "min_samples_leaf": 2, "n_jobs": -1}


def features(flows: FlowSet, timing: bool = False) -> np.ndarray:
    """The classifier's view of a flow: its signed lengths, 0 after the end (as in the paper); with `timing`, then
    each packet's log(1 + inter-arrival time in microseconds), 0 for the first packet and after the end."""
    signed = flows.signed.astype(np.float32)
    if not timing:
        return signed
    return np.hstack([signed, np.log1p(1e6 * flows.iat.astype(np.float64)).astype(np.float32)])


def forest(train: FlowSet, seed: int = 0, timing: bool = False):
    """The bounded Random Forest of TSTR, fitted on `train`'s flows (with their timing if asked) and labels."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(random_state=seed, **FOREST).fit(features(train, timing), train.label.astype(str))


def macro_f1(classifier, test: FlowSet, timing: bool = False) -> float:
    """Macro F1 of a fitted classifier on `test`, over the classes present in it."""
    from sklearn.metrics import f1_score

    predicted = classifier.predict(features(test, timing))
    return float(f1_score(test.label.astype(str), predicted, labels=sorted(test.present_counts()), average="macro",
                          zero_division=0))


def forest_f1(train: FlowSet, test: FlowSet, seed: int = 0, timing: bool = False) -> float:
    """Macro F1 on `test` (over the classes present in it) of a forest trained on `train`."""
    return macro_f1(forest(train, seed, timing), test, timing)


def class_fidelity(real_forest, flows: FlowSet) -> float:
    """The share of `flows` that `real_forest`, trained on the real training flows, labels with their own class.

    For synthetic flows it shows whether class conditioning works (chance is about 1 / classes); for the real
    test flows it is the classifier's accuracy, the value a generator's flows should come near."""
    return float(np.mean(real_forest.predict(features(flows)) == flows.label.astype(str)))


def tstr(train: FlowSet, test: FlowSet, synthetic: FlowSet, seed: int = 0, timing: bool = False) -> dict[str, float]:
    """F1 of the forest trained on real training flows (the upper bound) and on synthetic flows, and the class
    fidelity of the synthetic and of the real test flows; with `timing`, both F1 again with timing features."""
    real = forest(train, seed)
    scores = {"train_on_real": macro_f1(real, test), "train_on_synthetic": forest_f1(synthetic, test, seed),
              "class_fidelity_synthetic": class_fidelity(real, synthetic),
              "class_fidelity_real": class_fidelity(real, test)}
    if timing:
        scores["train_on_real_timing"] = forest_f1(train, test, seed, timing=True)
        scores["train_on_synthetic_timing"] = forest_f1(synthetic, test, seed, timing=True)
    return scores
