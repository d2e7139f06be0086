"""``linear``: standardised, concatenated utterance features → one multinomial logistic
regression per target (scikit-learn, lbfgs).

Frame-level inputs are mean-pooled. Validation rows are not needed (no early stopping).
BLAS threads follow the limits a runner sets with threadpoolctl.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mer_ensemble.errors import ModelError
from mer_ensemble.models._base import FitData, Inputs, MerModel, Probas
from mer_ensemble.models._common import (
    CLASS_WEIGHTS,
    check_choice,
    check_fitted,
    check_number,
    constant_proba,
    from_payload,
    init_args,
    load_arrays,
    normalize_rows,
    save_arrays,
)
from mer_ensemble.models._inputs import check_inputs, concat_pooled
from mer_ensemble.models._registry import register_model

__all__ = ["LinearModel"]


class LinearModel(MerModel):
    """Logistic regression per target on the standardised concatenation of all features.

    Fitted state: ``scaler_`` (StandardScaler) and ``estimators_`` (target -> fitted
    LogisticRegression, or a ``(n_classes,)`` prior when the target had < 2 known classes).
    """

    input_level = "utt"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        p = self.params
        check_number(self.name, "C", p["C"], low=0, open_low=True)
        check_number(self.name, "max_iter", p["max_iter"], low=1, integer=True)
        check_number(self.name, "tol", p["tol"], low=0, open_low=True)
        check_choice(self.name, "class_weight", p["class_weight"], CLASS_WEIGHTS)

    def _fit(self, data: FitData) -> None:
        """Fit on the rows with a known label, target by target (validation rows are not used)."""
        from sklearn.preprocessing import StandardScaler

        features = concat_pooled(data.X, list(self.feature_dims))
        self.scaler_ = StandardScaler().fit(features)
        scaled = self.scaler_.transform(features)
        self.estimators_ = {t: self._fit_target(scaled, data.y[t], c) for t, c in self.targets.items()}

    def _fit_target(self, scaled: np.ndarray, y: np.ndarray, n_classes: int) -> Any:
        """A LogisticRegression on the known rows of ``scaled`` ``(n, D)``, or the class
        prior ``(n_classes,)`` when fewer than two classes are known."""
        from sklearn.linear_model import LogisticRegression

        known = y >= 0
        if len(np.unique(y[known])) < 2:
            return constant_proba(y, n_classes, 1)[0]
        p = self.params
        estimator = LogisticRegression(
            C=p["C"], max_iter=p["max_iter"], tol=p["tol"], class_weight=p["class_weight"], random_state=self.seed
        )
        return estimator.fit(scaled[known], y[known])

    def predict_proba(self, X: Inputs) -> Probas:
        """Probabilities per target, ``(n, n_classes)``; classes unseen in training get 0."""
        check_fitted(self, "estimators_")
        n = check_inputs(X, self.feature_dims, self.name)
        scaled = self.scaler_.transform(concat_pooled(X, list(self.feature_dims)))
        out: Probas = {}
        for target, n_classes in self.targets.items():
            estimator = self.estimators_[target]
            if isinstance(estimator, np.ndarray):
                out[target] = np.tile(estimator, (n, 1))
                continue
            proba = np.zeros((n, n_classes), dtype=np.float64)
            proba[:, estimator.classes_] = estimator.predict_proba(scaled)
            out[target] = normalize_rows(proba)
        return out

    def save(self, path: str) -> None:
        """Write the scaler's and every estimator's arrays plus the init arguments as JSON
        (:func:`~mer_ensemble.models._common.save_arrays`; nothing is pickled)."""
        check_fitted(self, "estimators_")
        arrays = {"scaler/mean": self.scaler_.mean_, "scaler/scale": self.scaler_.scale_,
                  "scaler/var": self.scaler_.var_}
        kinds = {}
        for target, estimator in self.estimators_.items():
            if isinstance(estimator, np.ndarray):
                kinds[target] = "prior"
                arrays[f"prior/{target}"] = estimator
            else:
                kinds[target] = "logreg"
                for attr in ("classes_", "coef_", "intercept_", "n_iter_"):
                    arrays[f"logreg/{target}/{attr}"] = getattr(estimator, attr)
        meta = {"model": self.name, "init": init_args(self), "estimators": kinds,
                "n_samples_seen": int(np.max(self.scaler_.n_samples_seen_))}
        save_arrays(path, meta, arrays)

    @classmethod
    def load(cls, path: str) -> LinearModel:
        """Read a model written by :meth:`save`."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        meta, arrays = load_arrays(path)
        model = from_payload(cls, meta, path)
        try:
            scaler = StandardScaler()
            scaler.mean_, scaler.scale_, scaler.var_ = (arrays[f"scaler/{k}"] for k in ("mean", "scale", "var"))
            scaler.n_features_in_, scaler.n_samples_seen_ = len(scaler.mean_), meta["n_samples_seen"]
            model.scaler_, model.estimators_ = scaler, {}
            p = model.params
            for target, kind in meta["estimators"].items():
                if kind == "prior":
                    model.estimators_[target] = arrays[f"prior/{target}"]
                    continue
                estimator = LogisticRegression(C=p["C"], max_iter=p["max_iter"], tol=p["tol"],
                                               class_weight=p["class_weight"], random_state=model.seed)
                for attr in ("classes_", "coef_", "intercept_", "n_iter_"):
                    setattr(estimator, attr, arrays[f"logreg/{target}/{attr}"])
                estimator.n_features_in_ = estimator.coef_.shape[1]
                model.estimators_[target] = estimator
        except KeyError as exc:
            raise ModelError(f"{path}: the model file lacks {exc.args[0]!r}; it is damaged") from None
        return model


LinearModel.search_space = {
    "C": {"type": "float", "low": 1e-3, "high": 1e2, "log": True},
}

LinearModel.defaults = {
    "C": 1.0,
    "max_iter": 1000,
    "tol": 1e-4,
    "class_weight": None,
}

register_model("linear")(LinearModel)
