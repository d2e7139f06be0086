"""Nested and in-sample scores of a blending recipe (ensemble/_evaluate.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mer_ensemble.ensemble import (
    BestSingle,
    in_sample_score,
    make_blender,
    nested_oof_proba,
    nested_score,
)
from mer_ensemble.metrics import accuracy, weighted_f1
from tests.ensemble.cases import N_CLASSES, noise_runs


@pytest.mark.parametrize("name", ["greedy", "stacking", "best"])
def test_nested_score_is_below_in_sample_on_noise(name: str) -> None:
    rng = np.random.default_rng(1)
    n_rows = 300
    y = rng.integers(0, N_CLASSES, n_rows)
    probas = noise_runs(rng, 30, n_rows)
    folds = np.arange(n_rows) % 5
    pooled, per_fold = nested_score(lambda: make_blender(name), probas, y, folds, weighted_f1)
    optimistic = in_sample_score(lambda: make_blender(name), probas, y, folds, weighted_f1)
    assert len(per_fold) == 5
    assert pooled < optimistic
    assert pooled < 0.35  # noise stays near chance (0.25) once held out


def test_nested_stacking_never_sees_the_held_out_fold(one_good_among_noise) -> None:
    probas, y, folds, _ = one_good_among_noise
    held = folds == 0
    first = nested_oof_proba("stacking", probas, y, folds)
    relabelled = y.copy()
    relabelled[held] = (y[held] + 1) % N_CLASSES
    second = nested_oof_proba("stacking", probas, relabelled, folds)
    np.testing.assert_allclose(second[held], first[held])


def test_nested_score_accepts_metric_names_and_a_fitted_instance(one_good_among_noise) -> None:
    probas, y, folds, _ = one_good_among_noise
    pooled, per_fold = nested_score("best", probas, y, folds, "accuracy")
    assert 0.0 <= pooled <= 1.0 and len(per_fold) == 5
    assert in_sample_score(BestSingle(), probas, y, score_fn="accuracy") == pytest.approx(
        accuracy(y, probas[BestSingle().fit(probas, y, score_fn=accuracy).best_run_].argmax(axis=1))
    )
