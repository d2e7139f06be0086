"""``linear``: standardised, concatenated utterance features → one multinomial logistic
regression per target (scikit-learn, lbfgs).

``C="auto"`` and ``class_weight="auto"`` (the defaults) choose the inverse regularisation
strength from ``C_grid`` and the class weighting (none or balanced) per target by an inner
``inner_folds``-fold CV on the training rows only (grouped like the folds, pseudo-labelled
rows never held out, scored with the task metric; ties go to the lower inner log-loss);
the choice is recorded in ``selected_`` and the model is refitted on every training row.
Frame-level inputs are mean-pooled. BLAS threads follow the limits a runner sets with threadpoolctl.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mer_ensemble.errors import ModelError
from mer_ensemble.models._base import FitData, Inputs, MerModel, Probas, WorkSize
from mer_ensemble.models._common import (
    CLASS_WEIGHTS,
    check_choice,
    check_fitted,
    check_number,
    constant_proba,
    from_payload,
    init_args,
    inner_folds,
    load_arrays,
    save_arrays,
)
from mer_ensemble.models._inputs import check_inputs, concat_pooled
from mer_ensemble.models._registry import register_model
from mer_ensemble.probas import normalize_rows

__all__ = ["LinearModel"]


class LinearModel(MerModel):
    """Logistic regression per target on the standardised concatenation of all features.

    Fitted state: ``scaler_`` (StandardScaler) and ``estimators_`` (target -> fitted
    LogisticRegression, or a ``(n_classes,)`` prior when the target had < 2 known classes).
    """

    input_level = "utt"
    blend_value = 1.0
    #: share of the machine's matmul rate an L-BFGS fit reaches (docs/benchmarks.md), for :meth:`prior_seconds`
    prior_efficiency = 0.05

    @classmethod
    def prior_seconds(cls, params: dict[str, Any], work: WorkSize) -> float:
        """L-BFGS passes (at most 150 counted) over ``n_fit x dim x classes``, plus prediction."""
        rate = max(work.gflops, 1.0) * 1e9
        dim, n_outputs = work.dim, work.n_outputs
        flops = 4.0 * work.n_fit * dim * n_outputs * int(min(params.get("max_iter", 1000), 150))
        return 0.5 + (flops + 2.0 * work.n_predict * dim * n_outputs) / (rate * cls.prior_efficiency)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        p = self.params
        if p["C"] != AUTO:
            check_number(self.name, "C", p["C"], low=0, open_low=True)
        check_number(self.name, "max_iter", p["max_iter"], low=1, integer=True)
        check_number(self.name, "tol", p["tol"], low=0, open_low=True)
        check_choice(self.name, "class_weight", p["class_weight"], (*CLASS_WEIGHTS, AUTO))
        check_number(self.name, "inner_folds", p["inner_folds"], low=2, integer=True)
        grid = p["C_grid"]
        if not isinstance(grid, (list, tuple)) or not grid:
            raise ModelError(f"model {self.name!r}: C_grid={grid!r} must be a non-empty list of numbers > 0")
        for value in grid:
            check_number(self.name, "C_grid", value, low=0, open_low=True)

    def _fit(self, data: FitData) -> None:
        """Fit on the rows with a known label, target by target, choosing C and class weighting
        by inner CV when they are ``"auto"``."""
        from sklearn.preprocessing import StandardScaler

        features = concat_pooled(data.X, list(self.feature_dims))
        self.scaler_ = StandardScaler().fit(features)
        scaled = self.scaler_.transform(features)
        self.estimators_ = {}
        for target, n_classes in self.targets.items():
            C, class_weight = self._choose(scaled, data, target)
            self.estimators_[target] = self._fit_target(scaled, data.y[target], n_classes, C, class_weight)

    def _candidates(self) -> tuple[list[float], list[str | None]]:
        p = self.params
        grid = sorted(float(c) for c in p["C_grid"]) if p["C"] == AUTO else [float(p["C"])]
        weights = list(CLASS_WEIGHTS) if p["class_weight"] == AUTO else [p["class_weight"]]
        return grid, weights

    def _choose(self, scaled: np.ndarray, data: FitData, target: str) -> tuple[float, str | None]:
        """``(C, class_weight)`` for ``target``: fixed ones as given, ``"auto"`` ones by the mean
        score over an inner CV of the training rows (warm-started along the C grid)."""
        grid, weights = self._candidates()
        if len(grid) == 1 and len(weights) == 1:
            return grid[0], weights[0]
        y = data.y[target]
        known = y >= 0
        splits = inner_folds(y, n_splits=int(self.params["inner_folds"]), seed=self.seed, groups=data.groups,
                             candidates=data.val_candidates)
        if not splits or len(np.unique(y[known])) < 2:
            return grid[len(grid) // 2], weights[0]
        shape = (len(weights), len(grid), len(splits))
        scores, losses = np.full(shape, np.nan), np.full(shape, np.nan)
        for s_i, (train, val) in enumerate(splits):
            train, val = train[known[train]], val[known[val]]
            if len(np.unique(y[train])) < 2 or len(val) == 0:
                continue
            for w_i, weight in enumerate(weights):
                for c_i, proba in enumerate(self._path(scaled[train], y[train], scaled[val], grid, weight)):
                    full = np.zeros((len(val), self.targets[target]))
                    full[:, np.unique(y[train])] = proba
                    scores[w_i, c_i, s_i] = self._score(data, target, y[val], full)
                    losses[w_i, c_i, s_i] = -np.mean(np.log(np.clip(full[np.arange(len(val)), y[val]], 1e-12, 1)))
        if not np.isfinite(scores).any():
            return grid[len(grid) // 2], weights[0]
        mean, loss = np.nanmean(scores, axis=2), np.nanmean(losses, axis=2)
        best = np.nanmax(mean)
        # ties of the metric (frequent on small sets) go to the lowest log-loss: calibrated probabilities
        # matter to blends and pseudo-label thresholds
        w_i, c_i = min(zip(*np.nonzero(mean >= best - 1e-12), strict=True), key=lambda wc: loss[wc])
        C, weight = grid[int(c_i)], weights[int(w_i)]
        self.selected_.setdefault(target, {}).update(
            {"C": C, "class_weight": weight, "inner_score": round(float(best), 6), "inner_folds": len(splits)}
        )
        return C, weight

    def _path(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray, grid: list[float],
              class_weight: str | None) -> list[np.ndarray]:
        """Validation probabilities ``(m, n_present)`` for each C of ``grid`` (ascending), warm-started."""
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        p = self.params
        estimator = LogisticRegression(max_iter=p["max_iter"], tol=p["tol"], class_weight=class_weight,
                                       random_state=self.seed, warm_start=True)
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for C in grid:
                estimator.set_params(C=C)
                out.append(estimator.fit(X, y).predict_proba(X_val))
        return out

    @staticmethod
    def _score(data: FitData, target: str, y: np.ndarray, proba: np.ndarray) -> float:
        if data.score_fn is not None:
            return float(data.score_fn({target: y}, {target: proba}))
        from mer_ensemble.metrics import weighted_f1

        return weighted_f1(y, proba.argmax(axis=1))

    def _fit_target(self, scaled: np.ndarray, y: np.ndarray, n_classes: int, C: float,
                    class_weight: str | None) -> Any:
        """A LogisticRegression on the known rows of ``scaled`` ``(n, D)``, or the class
        prior ``(n_classes,)`` when fewer than two classes are known."""
        from sklearn.linear_model import LogisticRegression

        known = y >= 0
        if len(np.unique(y[known])) < 2:
            return constant_proba(y, n_classes, 1)[0]
        p = self.params
        estimator = LogisticRegression(
            C=C, max_iter=p["max_iter"], tol=p["tol"], class_weight=class_weight, random_state=self.seed
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

AUTO = "auto"

LinearModel.defaults = {
    "C": AUTO,
    "C_grid": [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0],
    "class_weight": AUTO,
    "inner_folds": 3,
    "max_iter": 1000,
    "tol": 1e-4,
}

register_model("linear")(LinearModel)
