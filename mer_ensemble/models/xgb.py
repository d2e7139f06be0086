"""``xgboost``: gradient-boosted trees (hist) on the concatenated utterance features,
one multi-class booster per target.

Runs on CUDA when present (``device="auto"``). With validation rows, each booster stops
after ``early_stopping_rounds`` rounds without a better validation log-loss and keeps its
best round. The thread count is ``n_jobs`` or, when None, the limit in force
(:func:`mer_ensemble.nn.device.available_threads`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mer_ensemble.errors import ModelError
from mer_ensemble.models._base import FitData, Inputs, MerModel, Probas
from mer_ensemble.models._common import (
    CLASS_WEIGHTS,
    balanced_class_weights,
    check_choice,
    check_fitted,
    check_number,
    constant_proba,
    from_payload,
    init_args,
    inner_split,
    load_arrays,
    normalize_rows,
    save_arrays,
)
from mer_ensemble.models._inputs import check_inputs, concat_pooled
from mer_ensemble.models._registry import register_model

__all__ = ["XGBoostModel"]


def _xgb_device(device: str) -> str:
    """``"cuda"`` when asked for or when ``"auto"`` finds a GPU, else ``"cpu"``."""
    from mer_ensemble.nn.device import resolve_device

    return "cuda" if resolve_device(device).type == "cuda" else "cpu"


def _raw(booster: Any) -> bytes:
    """A booster as XGBoost's UBJSON bytes."""
    return bytes(booster.save_raw(raw_format="ubj"))


class XGBoostModel(MerModel):
    """One XGBoost booster per target.

    Fitted state: ``boosters_`` (target -> ``xgboost.Booster``, or a ``(n_classes,)``
    prior when the target had < 2 known classes) and ``best_rounds_`` (target -> rounds kept).
    """

    input_level = "utt"
    uses_gpu = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        p, name = self.params, self.name
        check_number(name, "n_estimators", p["n_estimators"], low=1, integer=True)
        check_number(name, "max_depth", p["max_depth"], low=0, integer=True)
        check_number(name, "learning_rate", p["learning_rate"], low=0, open_low=True)
        check_number(name, "subsample", p["subsample"], low=0, high=1, open_low=True)
        check_number(name, "colsample_bytree", p["colsample_bytree"], low=0, high=1, open_low=True)
        check_number(name, "min_child_weight", p["min_child_weight"], low=0)
        check_number(name, "reg_lambda", p["reg_lambda"], low=0)
        check_number(name, "max_bin", p["max_bin"], low=2, integer=True)
        check_number(name, "early_stopping_rounds", p["early_stopping_rounds"], low=1, integer=True, allow_none=True)
        check_number(name, "n_jobs", p["n_jobs"], low=1, integer=True, allow_none=True)
        check_choice(name, "class_weight", p["class_weight"], CLASS_WEIGHTS)

    def _threads(self) -> int:
        from mer_ensemble.nn.device import available_threads

        return int(self.params["n_jobs"] or available_threads())

    def _booster_params(self, n_classes: int) -> dict[str, Any]:
        p = self.params
        return {
            "objective": "multi:softprob",
            "num_class": n_classes,
            "eval_metric": "mlogloss",
            "tree_method": "hist",
            "device": _xgb_device(self.device),
            "max_depth": p["max_depth"],
            "eta": p["learning_rate"],
            "subsample": p["subsample"],
            "colsample_bytree": p["colsample_bytree"],
            "min_child_weight": p["min_child_weight"],
            "lambda": p["reg_lambda"],
            "max_bin": p["max_bin"],
            "seed": self.seed,
            "nthread": self._threads(),
            "verbosity": 1,
        }

    def _fit(self, data: FitData) -> None:
        """Fit one booster per target on its known rows; validation rows (optional) choose
        the number of rounds by validation log-loss (``score_fn`` is not used)."""
        features = concat_pooled(data.X, list(self.feature_dims))
        labels, val_labels = data.y, data.y_val
        val_features = concat_pooled(data.X_val, list(self.feature_dims)) if data.X_val is not None else None
        if val_features is None and self.params["early_stopping_rounds"]:
            # early stopping on an inner split of the training rows, never on the fold's validation rows
            first = next(iter(self.targets))
            train, val = inner_split(labels[first], fraction=0.15, seed=self.seed, groups=data.groups,
                                     candidates=data.val_candidates)
            if len(val):
                val_features, features = features[val], features[train]
                val_labels = {t: v[val] for t, v in labels.items()}
                labels = {t: v[train] for t, v in labels.items()}
        self.boosters_: dict[str, Any] = {}
        self.best_rounds_: dict[str, int] = {}
        for target, n_classes in self.targets.items():
            y_val_t = val_labels[target] if val_labels is not None else None
            booster = self._fit_target(features, labels[target], n_classes, val_features, y_val_t)
            self.boosters_[target] = booster
            self.best_rounds_[target] = 0 if isinstance(booster, np.ndarray) else booster.num_boosted_rounds()
        self.selected_["rounds"] = dict(self.best_rounds_)

    def _fit_target(
        self,
        features: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        val_features: np.ndarray | None,
        y_val: np.ndarray | None,
    ) -> Any:
        """A booster on the known rows of ``features`` ``(n, D)`` (or the class prior
        ``(n_classes,)`` when fewer than two classes are known)."""
        import xgboost as xgb

        known = y >= 0
        if len(np.unique(y[known])) < 2:
            return constant_proba(y, n_classes, 1)[0]
        p = self.params
        weight = None
        if p["class_weight"] == "balanced":
            weight = balanced_class_weights(y, n_classes)[y[known]]
        threads = self._threads()
        dtrain = xgb.QuantileDMatrix(features[known], y[known], weight=weight, max_bin=p["max_bin"], nthread=threads)
        evals, stopping = [], None
        if val_features is not None and y_val is not None and (y_val >= 0).any():
            val_known = y_val >= 0
            dval = xgb.QuantileDMatrix(
                val_features[val_known], y_val[val_known], ref=dtrain, max_bin=p["max_bin"], nthread=threads
            )
            evals, stopping = [(dval, "val")], p["early_stopping_rounds"]
        booster = xgb.train(
            self._booster_params(n_classes),
            dtrain,
            num_boost_round=p["n_estimators"],
            evals=evals,
            early_stopping_rounds=stopping,
            verbose_eval=False,
        )
        if evals and stopping:
            booster = booster[: booster.best_iteration + 1]
        return booster

    def predict_proba(self, X: Inputs) -> Probas:
        """Probabilities per target, ``(n, n_classes)``."""
        import xgboost as xgb

        check_fitted(self, "boosters_")
        n = check_inputs(X, self.feature_dims, self.name)
        matrix = xgb.DMatrix(concat_pooled(X, list(self.feature_dims)), nthread=self._threads())
        out: Probas = {}
        for target, booster in self.boosters_.items():
            if isinstance(booster, np.ndarray):
                out[target] = np.tile(booster, (n, 1))
            else:
                booster.set_param({"nthread": self._threads()})
                out[target] = normalize_rows(booster.predict(matrix).reshape(n, -1))
        return out

    def save(self, path: str) -> None:
        """Write each booster as XGBoost's own UBJSON bytes (a class prior as its array) and
        the init arguments as JSON (:func:`~mer_ensemble.models._common.save_arrays`; nothing is pickled)."""
        check_fitted(self, "boosters_")
        arrays, kinds = {}, {}
        for target, booster in self.boosters_.items():
            if isinstance(booster, np.ndarray):
                kinds[target], arrays[f"prior/{target}"] = "prior", booster
            else:
                kinds[target] = "ubj"
                arrays[f"booster/{target}"] = np.frombuffer(_raw(booster), dtype=np.uint8)
        meta = {"model": self.name, "init": init_args(self), "boosters": kinds,
                "best_rounds": {t: int(r) for t, r in self.best_rounds_.items()}}
        save_arrays(path, meta, arrays)

    @classmethod
    def load(cls, path: str) -> XGBoostModel:
        """Read a model written by :meth:`save`."""
        import xgboost as xgb

        meta, arrays = load_arrays(path)
        model = from_payload(cls, meta, path)
        model.boosters_ = {}
        try:
            for target, kind in meta["boosters"].items():
                if kind == "prior":
                    model.boosters_[target] = arrays[f"prior/{target}"]
                    continue
                booster = xgb.Booster()
                try:
                    booster.load_model(bytearray(arrays[f"booster/{target}"].tobytes()))
                except xgb.core.XGBoostError:
                    raise ModelError(f"{path}: booster of {target!r} is not a valid XGBoost model") from None
                model.boosters_[target] = booster
            model.best_rounds_ = dict(meta["best_rounds"])
        except KeyError as exc:
            raise ModelError(f"{path}: the model file lacks {exc.args[0]!r}; it is damaged") from None
        return model


# Competition features are wide (768-5120 dims) and labelled sets small (a few thousand
# rows): there, hist's cost is dominated by per-node histograms over features x bins, so
# fewer bins and column subsampling cut fit time ~5x at no measured loss.
XGBoostModel.search_space = {
    "max_depth": {"type": "int", "low": 2, "high": 10},
    "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
    "n_estimators": {"type": "int", "low": 100, "high": 1000, "step": 50},
    "subsample": {"type": "float", "low": 0.5, "high": 1.0},
    "colsample_bytree": {"type": "float", "low": 0.3, "high": 1.0},
}

XGBoostModel.defaults = {
    "n_estimators": 400,
    "max_depth": 4,
    "learning_rate": 0.08,
    "subsample": 0.8,
    "colsample_bytree": 0.3,
    "min_child_weight": 1.0,
    "reg_lambda": 1.0,
    "max_bin": 64,
    "early_stopping_rounds": 30,
    "class_weight": None,
    "n_jobs": None,
}

register_model("xgboost")(XGBoostModel)
