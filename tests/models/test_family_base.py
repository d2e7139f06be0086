"""What every family declares on its class (models/_base.py), checked over the whole registry, and the
raw inputs a family reads beside the features."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from mer_ensemble.data import RAW_KINDS, RAW_TEXT
from mer_ensemble.errors import DataError, ModelError
from mer_ensemble.models import MerModel, WorkSize, create_model, get_model_class, list_models

SMALL = WorkSize(n_fit=1000, n_predict=500, dims=[256], n_outputs=6, n_modalities=1, gflops=50)


def _grown(work: WorkSize, **changes: Any) -> WorkSize:
    return WorkSize(**{**work.__dict__, **changes})


@pytest.mark.parametrize("name", list_models())
def test_every_family_declares_value_cost_device_and_inputs(name: str, request: pytest.FixtureRequest) -> None:
    family = get_model_class(name)
    # a family that fine-tunes a checkpoint has no default one: it gets a tiny random BERT
    required = {"checkpoint": str(request.getfixturevalue("tiny_checkpoints")["bert"])} \
        if "checkpoint" in family.defaults and family.defaults["checkpoint"] is None else {}
    params = dict(family.defaults)
    assert 0 < family.blend_value <= 1 and isinstance(family.uses_gpu, bool)
    assert set(family.raw_inputs) <= set(RAW_KINDS) and isinstance(family.needs_features, bool)
    prior = family.prior_seconds(params, SMALL)
    assert 0 < prior < math.inf
    assert family.prior_seconds(params, _grown(SMALL, n_fit=8000)) > prior, "more rows cost more"
    assert family.prior_seconds(params, _grown(SMALL, gflops=500)) <= prior, "a faster machine costs less"
    weights = family.n_weights(params, [256, 128], 2)
    assert weights is None or weights >= 256 + 128, "a network has at least one weight per input"
    model = create_model(name, targets={"y": 3}, feature_dims={"a": 4, "b": 3}, modalities={"a": "audio", "b": "text"},
                         **required)
    assert set(model.raw_inputs) <= set(RAW_KINDS) and model.raw_keys == [f"raw:{k}" for k in model.raw_inputs]
    assert isinstance(model.uses_unlabeled, bool) and isinstance(model.uses_variants, bool)


def test_the_shipped_costs_follow_their_work_measures() -> None:
    mlp = get_model_class("mlp")
    params = {**mlp.defaults, "epochs": 100, "patience": 10}
    small = mlp.prior_seconds({**params, "hidden": 64}, SMALL)
    big = mlp.prior_seconds({**params, "hidden": 512}, _grown(SMALL, n_fit=4000))
    assert big > 10 * small, "rows times weights"
    assert mlp.n_weights({"hidden": 10, "layers": 3}, [7], 1) == 7 * 10 + 2 * 10 * 10
    assert get_model_class("attention_fusion").n_weights({"hidden": 10}, [7], 3) == 70 + 12 * 100
    xgb = get_model_class("xgboost")
    wide_params = {**xgb.defaults, "n_estimators": 400, "colsample_bytree": 0.3, "max_depth": 4, "reduce": "none"}
    wide = xgb.prior_seconds(wide_params, _grown(SMALL, n_fit=4000, dims=[6912], n_predict=20000))
    narrow = xgb.prior_seconds(wide_params, _grown(SMALL, n_fit=4000, dims=[384], n_predict=20000))
    assert wide > 5 * narrow
    reduced = xgb.prior_seconds({**wide_params, "reduce": "auto"}, _grown(SMALL, n_fit=4000, dims=[6912]))
    on_gpu = xgb.prior_seconds({**wide_params, "reduce": "auto"}, _grown(SMALL, n_fit=4000, dims=[6912], on_cuda=True))
    assert reduced < on_gpu, "auto reduces the width on the CPU only"
    assert get_model_class("linear").blend_value == 1.0 and xgb.blend_value == 0.7


class _Echo(MerModel):
    """Reads raw text only; predicts uniform probabilities; remembers the text it was given (also in
    ``selected_``, which a job writes into its result)."""

    name = "echo_text"
    defaults: dict[str, Any] = {}
    raw_inputs = ("text",)
    needs_features = False

    def _fit(self, data: Any) -> None:
        self.texts_ = self.selected_["texts"] = list(data.X[RAW_TEXT])

    def predict_proba(self, X: Any) -> dict[str, np.ndarray]:
        n = len(X[RAW_TEXT])
        return {t: np.full((n, c), 1.0 / c) for t, c in self.targets.items()}

    def save(self, path: str) -> None:  # pragma: no cover - not used
        raise NotImplementedError

    @classmethod
    def load(cls, path: str) -> MerModel:  # pragma: no cover - not used
        raise NotImplementedError


def test_raw_inputs_are_checked_like_features() -> None:
    model = _Echo(targets={"y": 2}, feature_dims={}, modalities={})
    texts = np.array(["a", None, "b c"], dtype=object)
    assert model.fit({RAW_TEXT: texts}, {"y": np.array([0, 1, -1])}).texts_ == ["a", None, "b c"]
    with pytest.raises(DataError, match=r"inputs lack \['raw:text'\]"):
        model.fit({}, {"y": np.array([0, 1, -1])})
    with pytest.raises(DataError, match=r"raw input 'raw:text' must be an \(n,\) array"):
        model.fit({RAW_TEXT: texts.reshape(3, 1)}, {"y": np.array([0, 1, -1])})
    both = _Echo(targets={"y": 2}, feature_dims={"a": 2}, modalities={"a": "audio"})
    with pytest.raises(DataError, match="inputs disagree on the number of rows"):
        both.fit({"a": np.zeros((4, 2), np.float32), RAW_TEXT: texts}, {"y": np.zeros(4, np.int64)})


def test_a_family_may_only_declare_known_raw_inputs() -> None:
    class Video(_Echo):
        raw_inputs = ("video",)

    with pytest.raises(ModelError, match=r"raw_inputs \['video'\] are not among \['text', 'audio'\]"):
        Video(targets={"y": 2}, feature_dims={}, modalities={})
