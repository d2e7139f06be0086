"""Per-class bias tuned after blending (ensemble/_bias.py)."""

from __future__ import annotations

import numpy as np

from mer_ensemble.ensemble import (
    ClassBias,
    MeanBlender,
    apply_class_bias,
    tune_class_bias,
)
from mer_ensemble.metrics import weighted_f1
from tests.ensemble.cases import N_CLASSES


def _skewed_case() -> tuple[np.ndarray, np.ndarray]:
    """Class 2 is under-predicted: its rows put 0.35 on class 2 but 0.40 on class 0."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, N_CLASSES, 1000)
    proba = np.eye(N_CLASSES)[y] * 0.7 + 0.1
    rows2 = y == 2
    proba[rows2] = [0.40, 0.15, 0.35, 0.10]
    proba += rng.uniform(0, 0.02, proba.shape)
    return proba / proba.sum(axis=1, keepdims=True), y


def test_tune_class_bias_improves_the_in_sample_metric() -> None:
    proba, y = _skewed_case()
    before = weighted_f1(y, proba.argmax(axis=1))
    bias = tune_class_bias(proba, y, weighted_f1)
    after = weighted_f1(y, apply_class_bias(proba, bias).argmax(axis=1))
    assert after > before + 0.1
    assert bias[2] > bias[0]
    np.testing.assert_allclose(apply_class_bias(proba, bias).sum(axis=1), 1.0)


def test_class_bias_wrapper_and_no_change_when_nothing_helps(one_good_among_noise) -> None:
    proba, y = _skewed_case()
    runs = np.stack([proba, proba])
    wrapped = ClassBias(MeanBlender()).fit(runs, y)
    assert weighted_f1(y, wrapped.predict(runs)) > weighted_f1(y, MeanBlender().fit(runs, y).predict(runs))
    description = wrapped.describe()
    assert description["blender"] == "mean" and description["weights"] == [0.5, 0.5]
    assert description["class_bias"][2] > description["class_bias"][0]
    perfect = np.eye(N_CLASSES)[y] * 0.9 + 0.025
    np.testing.assert_array_equal(tune_class_bias(perfect, y), np.zeros(N_CLASSES))
