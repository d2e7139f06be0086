"""Stacking with a meta-model and its own out-of-fold predictions (ensemble/_stacking.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mer_ensemble.ensemble import (
    MeanBlender,
    StackingBlender,
)
from mer_ensemble.errors import BlendError
from mer_ensemble.metrics import weighted_f1
from tests.ensemble.cases import N_CLASSES, noise_runs


def test_stacking_chooses_its_c_on_its_own_folds(one_good_among_noise) -> None:
    probas, y, folds, _ = one_good_among_noise
    stack = StackingBlender(C="auto", C_grid=(1e-3, 1.0)).fit(probas, y, folds=folds)
    assert stack.C_ in (1e-3, 1.0)
    fixed = StackingBlender(C=stack.C_).fit(probas, y, folds=folds)
    np.testing.assert_allclose(fixed.oof_proba_, stack.oof_proba_)
    other = StackingBlender(C=1e-3 if stack.C_ == 1.0 else 1.0).fit(probas, y, folds=folds)
    assert stack.oof_score_ >= other.oof_score_


@pytest.mark.parametrize("meta", ["logreg", "xgboost"])
def test_stacking_oof_never_uses_its_own_fold(meta: str, one_good_among_noise) -> None:
    probas, y, folds, _ = one_good_among_noise
    params = {"meta_params": {"n_estimators": 20}} if meta == "xgboost" else {}
    held = folds == 2
    first = StackingBlender(meta=meta, **params).fit(probas, y, folds=folds)
    relabelled = y.copy()
    relabelled[held] = (y[held] + 1) % N_CLASSES
    second = StackingBlender(meta=meta, **params).fit(probas, relabelled, folds=folds)
    np.testing.assert_allclose(second.oof_proba_[held], first.oof_proba_[held])
    # the other folds' meta-models did train on fold 2, so their predictions move
    assert not np.allclose(second.oof_proba_[~held], first.oof_proba_[~held])
    assert first.oof_proba_.shape == (len(y), N_CLASSES)
    np.testing.assert_allclose(first.oof_proba_.sum(axis=1), 1.0)


def test_stacking_learns_from_thegood_run(one_good_among_noise) -> None:
    probas, y, folds, good = one_good_among_noise
    blender = StackingBlender().fit(probas, y, folds=folds)
    assert blender.oof_score_ > weighted_f1(y, MeanBlender().fit(probas, y).predict(probas)) - 0.05
    assert blender.oof_score_ > 0.6


def test_stacking_needs_folds_and_handles_a_missing_class() -> None:
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 200)  # class 2 of 3 never seen
    probas = noise_runs(rng, 3, 200, 3)
    with pytest.raises(BlendError, match="needs the runs' fold id"):
        StackingBlender().fit(probas, y)
    with pytest.raises(BlendError, match="1 distinct fold id"):
        StackingBlender().fit(probas, y, folds=np.zeros(200, int))
    blender = StackingBlender().fit(probas, y, folds=np.arange(200) % 4)
    proba = blender.predict_proba(probas)
    assert proba.shape == (200, 3) and np.allclose(proba[:, 2], 0)
