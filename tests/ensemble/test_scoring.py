"""Vectorised metrics for the search blenders (ensemble/_scoring.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mer_ensemble.ensemble import (
    batch_scorer,
)
from mer_ensemble.metrics import accuracy, macro_f1, micro_f1, weighted_f1


@pytest.mark.parametrize("metric", [weighted_f1, macro_f1, micro_f1, accuracy])
def test_batch_scorer_matches_the_metric(metric) -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 5, 400)
    y[:3] = 4
    preds = rng.integers(0, 4, (20, 400))  # class 4 never predicted
    preds[0] = y
    expected = np.array([metric(y, p) for p in preds])
    np.testing.assert_allclose(batch_scorer(metric, 6)(y, preds), expected, atol=1e-12)
    np.testing.assert_allclose(batch_scorer(metric.__name__, 6)(y, preds), expected, atol=1e-12)


def test_batch_scorer_agrees_with_sklearn_weighted_f1() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(4)
    y = rng.integers(0, 7, 1000)
    preds = rng.integers(0, 7, (5, 1000))
    ours = batch_scorer(weighted_f1, 7)(y, preds)
    theirs = [f1_score(y, p, average="weighted", zero_division=0) for p in preds]
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
