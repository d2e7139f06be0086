"""The blender registry (ensemble/_registry.py): the contract every registered blender keeps, and the
errors of make_blender."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mer_ensemble.ensemble import (
    BLENDERS,
    ClassBias,
    MeanBlender,
    list_blenders,
    make_blender,
)
from mer_ensemble.errors import BlendError
from mer_ensemble.metrics import weighted_f1
from tests.ensemble.cases import N_CLASSES


@pytest.mark.parametrize("name", list_blenders())
def test_registry_contract(name: str, one_good_among_noise) -> None:
    probas, y, folds, _ = one_good_among_noise
    params = {"n_trials": 20} if name == "optuna" else {}
    blender = make_blender(name, **params)
    with pytest.raises(BlendError, match="not fitted"):
        blender.predict_proba(probas[:, :10])
    assert blender.fit(probas, y, folds=folds, score_fn=weighted_f1) is blender
    proba = blender.predict_proba(probas[:, :50])
    assert proba.shape == (50, N_CLASSES)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert blender.predict(probas[:, :50]).shape == (50,)
    if hasattr(blender, "weights_"):
        assert blender.weights_.shape == (8,)
        assert blender.weights_.sum() == pytest.approx(1.0)
        assert (blender.weights_ >= 0).all()
    json.dumps(blender.describe())
    with pytest.raises(BlendError, match="predict got 7 runs but the blender was fitted on 8"):
        blender.predict_proba(probas[:7])
    # the base class checks every blender's inputs before its own _fit runs
    broken = probas.copy()
    broken[2, 5, 0] = np.nan
    with pytest.raises(BlendError, match="run 2 holds NaN"):
        make_blender(name, **params).fit(broken, y, folds=folds)
    with pytest.raises(BlendError, match="y holds class index"):
        make_blender(name, **params).fit(probas, np.full_like(y, N_CLASSES), folds=folds)
    assert make_blender(name).label, "every registered blender has a label for tables and reports"


def test_make_blender_errors_name_the_valid_choices() -> None:
    with pytest.raises(BlendError, match=r"unknown blender 'averaging'; expected one of best, greedy, mean"):
        make_blender("averaging")
    with pytest.raises(BlendError, match=r"unknown parameter\(s\) \['step'\]; allowed: \['steps'\]"):
        make_blender("greedy", step=3)
    with pytest.raises(BlendError, match=r"blender 'mean': unknown parameter\(s\) \['steps'\]; allowed: \[\]"):
        make_blender("mean", steps=3)
    assert make_blender("greedy", steps=None).steps == 25  # None means the default
    wrapped = make_blender("mean", class_bias=True)
    assert isinstance(wrapped, ClassBias) and isinstance(wrapped.blender, MeanBlender)
    assert set(BLENDERS) >= {"best", "mean", "vote", "greedy", "optuna", "stacking"}
