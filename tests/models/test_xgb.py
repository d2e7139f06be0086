"""XGBoost on wide inputs: per-modality PCA fitted on the training rows only, the depth chosen
on validation rows, both kept through save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mer_ensemble.errors import ModelError
from mer_ensemble.models import create_model

TARGETS = {"emotion": 3}
DIMS = {"hubert": 24, "wavlm": 16, "roberta": 20}
MODALITIES = {"hubert": "audio", "wavlm": "audio", "roberta": "text"}


def _data(n: int, seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = {f: rng.normal(size=(n, d)).astype(np.float32) for f, d in DIMS.items()}
    X["hubert"][np.arange(n), y] += 2.0
    return X, {"emotion": y.astype(np.int64)}


def _model(**params) -> object:
    base = {"n_estimators": 15, "n_jobs": 1}
    return create_model("xgboost", targets=TARGETS, feature_dims=DIMS, modalities=MODALITIES, seed=0, device="cpu",
                        **{**base, **params})


def test_pca_per_modality_is_fitted_on_the_training_rows_only():
    X, y = _data(160)
    train, val = slice(0, 120), slice(120, None)
    model = _model(reduce="pca", reduce_components=5, max_depth=3)
    model.fit({f: v[train] for f, v in X.items()}, {"emotion": y["emotion"][train]},
              {f: v[val] for f, v in X.items()}, {"emotion": y["emotion"][val]})
    assert model.selected_["columns"] == 10  # two modalities x 5 components
    audio = model.reducer_.state_["audio"]
    np.testing.assert_allclose(audio["mean"], np.concatenate([X["hubert"][train], X["wavlm"][train]], 1).mean(0),
                               rtol=1e-5, atol=1e-6)
    assert audio["components"].shape == (5, 40)
    proba = model.predict_proba({f: v[val] for f, v in X.items()})["emotion"]
    assert proba.shape == (40, 3) and (proba.argmax(1) == y["emotion"][val]).mean() > 0.5


def test_auto_keeps_narrow_inputs_at_full_width_and_reduces_wide_ones(monkeypatch):
    from mer_ensemble.models import xgb

    X, y = _data(90)
    narrow = _model(max_depth=2).fit(X, y)
    assert narrow.reducer_ is None and narrow.selected_["columns"] == 60
    monkeypatch.setattr(xgb, "AUTO_REDUCE_ABOVE", 50)
    wide = _model(max_depth=2, reduce_components=4).fit(X, y)
    assert wide.reducer_ is not None and wide.selected_["columns"] == 8
    assert _model(reduce="none", max_depth=2).fit(X, y).selected_["columns"] == 60


def test_depth_is_chosen_by_validation_log_loss():
    import xgboost

    X, y = _data(200, seed=1)
    train, val = slice(0, 150), slice(150, None)
    Xt, yt = {f: v[train] for f, v in X.items()}, {"emotion": y["emotion"][train]}
    Xv, yv = {f: v[val] for f, v in X.items()}, {"emotion": y["emotion"][val]}
    losses = {}
    for depth in (1, 5):
        single = _model(max_depth=depth, reduce="none").fit(Xt, yt, Xv, yv)
        booster = single.boosters_["emotion"]
        dval = xgboost.DMatrix(np.concatenate([Xv[f] for f in DIMS], 1), label=yv["emotion"])
        losses[depth] = float(booster.eval(dval).split(":")[-1])
    both = _model(max_depth=[1, 5], reduce="none").fit(Xt, yt, Xv, yv)
    assert both.selected_["max_depth"]["emotion"] == min(losses, key=losses.get)
    assert both.selected_["rounds"]["emotion"] >= 1


def test_save_and_load_keep_the_reduction(tmp_path: Path):
    X, y = _data(100)
    model = _model(reduce="pca", reduce_components=3, max_depth=2).fit(X, y)
    path = tmp_path / "xgb.model"
    model.save(str(path))
    loaded = type(model).load(str(path))
    np.testing.assert_array_equal(loaded.predict_proba(X)["emotion"], model.predict_proba(X)["emotion"])


@pytest.mark.parametrize("params, message", [({"reduce": "svd"}, "reduce='svd' is not allowed"),
                                             ({"max_depth": []}, "at least one depth"),
                                             ({"max_depth": [3, -1]}, "max_depth=-1"),
                                             ({"reduce_components": 0}, "reduce_components=0")])
def test_bad_settings_are_refused(params, message):
    with pytest.raises(ModelError, match=message):
        _model(**params)
