"""``xgboost``: gradient-boosted trees (hist) on the concatenated utterance features,
one multi-class booster per target.

Runs on CUDA when present (``device="auto"``). Each booster stops after
``early_stopping_rounds`` rounds without a better log-loss on the validation rows (an inner
split of the training rows when none are given) and keeps its best round; with a list of
``max_depth`` values, one booster per depth is grown and the one with the best validation
log-loss kept (``selected_`` records depth and rounds). The thread count is ``n_jobs`` or,
when None, the limit in force (:func:`mer_ensemble.nn.device.available_threads`).

Wide inputs on the CPU: competition features are 768-5120 dims per modality, and hist's cost
grows with the columns (about 1 s per boosting round for 4,000 rows × 6,912 columns on one
CPU thread, so over 5 minutes per fold). With ``reduce`` (default ``"auto"``: on the CPU when
the inputs are wider than :data:`AUTO_REDUCE_ABOVE` columns) each modality's features are
standardised and projected on their first ``reduce_components`` principal components,
fitted on the training rows of the fit only (never on validation, test or pool rows); the
trees then split on a few hundred columns (about 30x faster at MER2024 scale, CV within noise:
``scripts/bench_train.py --part xgb``). On CUDA the full width stays the default.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mer_ensemble.errors import ModelError
from mer_ensemble.models._base import FitData, Inputs, MerModel, Probas, WorkSize
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
    save_arrays,
)
from mer_ensemble.models._inputs import check_inputs, concat_pooled
from mer_ensemble.models._registry import register_model
from mer_ensemble.probas import normalize_rows

__all__ = ["AUTO_REDUCE_ABOVE", "ModalityPCA", "XGBoostModel"]

#: with ``reduce="auto"``, inputs wider than this many columns are reduced on the CPU
AUTO_REDUCE_ABOVE = 512
#: validation share of the inner split that early stopping and the depth choice use
INNER_FRACTION = 0.15


class ModalityPCA:
    """Per modality: standardise the columns, project on the first ``k`` principal components.

    ``groups``: modality -> feature names (in input order); a modality with at most ``k``
    columns is only standardised. Fitted state per modality: ``mean_`` and ``scale_``
    ``(D,)``, ``components_`` ``(k, D)`` or None (float32).
    """

    def __init__(self, groups: dict[str, list[str]], k: int, seed: int) -> None:
        self.groups, self.k, self.seed = groups, int(k), int(seed)
        self.state_: dict[str, dict[str, np.ndarray | None]] = {}

    def fit_transform(self, X: Inputs) -> np.ndarray:
        """Fit on ``X`` (the training rows) and return their reduced columns ``(n, sum of k)``."""
        from sklearn.utils.extmath import randomized_svd

        for modality, features in self.groups.items():
            block = concat_pooled(X, features).astype(np.float64)
            mean = block.mean(axis=0)
            scale = block.std(axis=0)
            scale[scale < 1e-6] = 1.0
            z = (block - mean) / scale
            components = None
            k = min(self.k, z.shape[0] - 1)
            if block.shape[1] > self.k and k >= 1:
                _, _, vt = randomized_svd(z, k, random_state=self.seed)
                components = vt.astype(np.float32)
            self.state_[modality] = {"mean": mean.astype(np.float32), "scale": scale.astype(np.float32),
                                     "components": components}
        return self.transform(X)

    @staticmethod
    def _project(z: np.ndarray, components: np.ndarray | None) -> np.ndarray:
        return z if components is None else z @ components.T

    def transform(self, X: Inputs) -> np.ndarray:
        """The reduced columns of any rows, ``(n, sum of k)`` float32."""
        parts = []
        for modality, features in self.groups.items():
            st = self.state_[modality]
            z = (concat_pooled(X, features) - st["mean"]) / st["scale"]
            parts.append(self._project(z.astype(np.float32), st["components"]))
        return np.concatenate(parts, axis=1)

    def arrays(self) -> dict[str, np.ndarray]:
        """The fitted state as named arrays (for saving)."""
        out = {}
        for modality, st in self.state_.items():
            for name, value in st.items():
                if value is not None:
                    out[f"{modality}/{name}"] = value
        return out

    @classmethod
    def from_arrays(cls, groups: dict[str, list[str]], k: int, seed: int,
                    arrays: dict[str, np.ndarray]) -> ModalityPCA:
        pca = cls(groups, k, seed)
        for modality in groups:
            pca.state_[modality] = {"mean": np.asarray(arrays[f"{modality}/mean"]),
                                    "scale": np.asarray(arrays[f"{modality}/scale"]),
                                    "components": arrays.get(f"{modality}/components")}
        return pca


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
    blend_value = 0.7
    #: share of the machine's matmul rate a boosting round reaches (docs/benchmarks.md), for :meth:`prior_seconds`
    prior_efficiency = 0.02

    @classmethod
    def prior_seconds(cls, params: dict[str, Any], work: WorkSize) -> float:
        """``n_fit x columns x classes`` per round and depth level, the columns reduced as
        ``reduce`` would (per-modality PCA on the CPU above :data:`AUTO_REDUCE_ABOVE`) and sampled."""
        rate = max(work.gflops, 1.0) * 1e9
        reduce = params.get("reduce", "none")
        columns = float(work.dim)
        if reduce == "pca" or (reduce == "auto" and not work.on_cuda and work.dim > AUTO_REDUCE_ABOVE):
            columns = min(columns, work.n_modalities * float(params.get("reduce_components", 64)))
        columns *= float(params.get("colsample_bytree", 1.0))
        depth = params.get("max_depth", 6)
        depth_sum = sum(depth) if isinstance(depth, (list, tuple)) else depth
        rounds = float(params.get("n_estimators", 100))
        work_units = work.n_fit * columns * work.n_outputs * rounds * (1 + float(depth_sum)) / 8
        return 1.0 + work_units / (rate * cls.prior_efficiency)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        p, name = self.params, self.name
        check_number(name, "n_estimators", p["n_estimators"], low=1, integer=True)
        depths = p["max_depth"] if isinstance(p["max_depth"], (list, tuple)) else [p["max_depth"]]
        if not depths:
            raise ModelError(f"model {name!r}: max_depth=[] needs at least one depth")
        for depth in depths:
            check_number(name, "max_depth", depth, low=0, integer=True)
        check_choice(name, "reduce", p["reduce"], ("auto", "none", "pca"))
        check_number(name, "reduce_components", p["reduce_components"], low=1, integer=True)
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

    def _booster_params(self, n_classes: int, depth: int) -> dict[str, Any]:
        p = self.params
        return {
            "objective": "multi:softprob",
            "num_class": n_classes,
            "eval_metric": "mlogloss",
            "tree_method": "hist",
            "device": _xgb_device(self.device),
            "max_depth": depth,
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

    def _depths(self) -> list[int]:
        depth = self.params["max_depth"]
        return [int(d) for d in depth] if isinstance(depth, (list, tuple)) else [int(depth)]

    def _modality_groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for feature in self.feature_dims:
            groups.setdefault(self.modalities.get(feature, feature), []).append(feature)
        return groups

    def _uses_reduction(self) -> bool:
        """Whether the inputs are reduced per modality (``reduce``; ``auto``: wide inputs on the CPU)."""
        mode = self.params["reduce"]
        if mode != "auto":
            return mode == "pca"
        width = sum(self.feature_dims.values())
        return _xgb_device(self.device) == "cpu" and width > AUTO_REDUCE_ABOVE

    def _columns(self, X: Inputs) -> np.ndarray:
        """The columns the trees split on: the reduced modalities, or every feature side by side."""
        if self.reducer_ is not None:
            return self.reducer_.transform(X)
        return concat_pooled(X, list(self.feature_dims))

    def _fit(self, data: FitData) -> None:
        """Fit one booster per target on its known rows. Validation rows (``X_val``, else an
        inner split of the training rows, grouped, pseudo-labelled rows never held out) choose
        the number of rounds and, with several ``max_depth`` values, the depth, by validation
        log-loss (``score_fn`` is not used). The reduction of wide inputs is fitted on the
        training rows only."""
        from mer_ensemble.models._inputs import subset_rows

        X, labels, X_val, val_labels = data.X, data.y, data.X_val, data.y_val
        if X_val is None and (self.params["early_stopping_rounds"] or len(self._depths()) > 1):
            # early stopping and the depth choice use an inner split, never the fold's validation rows
            first = next(iter(self.targets))
            train, val = inner_split(labels[first], fraction=INNER_FRACTION, seed=self.seed, groups=data.groups,
                                     candidates=data.val_candidates)
            if len(val):
                X_val = {f: subset_rows(v, val) for f, v in X.items()}
                X = {f: subset_rows(v, train) for f, v in X.items()}
                val_labels = {t: v[val] for t, v in labels.items()}
                labels = {t: v[train] for t, v in labels.items()}
        self.reducer_: ModalityPCA | None = None
        if self._uses_reduction():
            self.reducer_ = ModalityPCA(self._modality_groups(), self.params["reduce_components"], self.seed)
            features = self.reducer_.fit_transform(X)
        else:
            features = concat_pooled(X, list(self.feature_dims))
        val_features = self._columns(X_val) if X_val is not None else None
        self.boosters_: dict[str, Any] = {}
        self.best_rounds_: dict[str, int] = {}
        depths: dict[str, int] = {}
        for target, n_classes in self.targets.items():
            y_val_t = val_labels[target] if val_labels is not None else None
            booster, depth = self._fit_target(features, labels[target], n_classes, val_features, y_val_t)
            self.boosters_[target] = booster
            self.best_rounds_[target] = 0 if isinstance(booster, np.ndarray) else booster.num_boosted_rounds()
            if depth is not None:
                depths[target] = depth
        self.selected_["rounds"] = dict(self.best_rounds_)
        self.selected_["max_depth"] = depths
        self.selected_["columns"] = int(features.shape[1])

    def _fit_target(
        self,
        features: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        val_features: np.ndarray | None,
        y_val: np.ndarray | None,
    ) -> tuple[Any, int | None]:
        """``(booster, depth)`` on the known rows of ``features`` ``(n, D)`` (or the class prior
        ``(n_classes,)`` and None when fewer than two classes are known). With validation rows,
        one booster per depth, early-stopped, the lowest validation log-loss kept."""
        import xgboost as xgb

        known = y >= 0
        if len(np.unique(y[known])) < 2:
            return constant_proba(y, n_classes, 1)[0], None
        p = self.params
        weight = None
        if p["class_weight"] == "balanced":
            weight = balanced_class_weights(y, n_classes)[y[known]]
        threads = self._threads()
        dtrain = xgb.QuantileDMatrix(features[known], y[known], weight=weight, max_bin=p["max_bin"], nthread=threads)
        dval = None
        if val_features is not None and y_val is not None and (y_val >= 0).any():
            val_known = y_val >= 0
            dval = xgb.QuantileDMatrix(
                val_features[val_known], y_val[val_known], ref=dtrain, max_bin=p["max_bin"], nthread=threads
            )
        depths = self._depths() if dval is not None else self._depths()[:1]
        best: tuple[float, Any, int] | None = None
        for depth in depths:
            stopping = p["early_stopping_rounds"] if dval is not None else None
            history: dict[str, Any] = {}
            booster = xgb.train(
                self._booster_params(n_classes, depth),
                dtrain,
                num_boost_round=p["n_estimators"],
                evals=[(dval, "val")] if dval is not None else [],
                early_stopping_rounds=stopping,
                evals_result=history,
                verbose_eval=False,
            )
            if dval is None:
                return booster, depth
            losses = history["val"]["mlogloss"]
            if stopping:
                booster = booster[: booster.best_iteration + 1]
                loss = float(losses[booster.num_boosted_rounds() - 1])
            else:
                loss = float(losses[-1])
            if best is None or loss < best[0]:
                best = (loss, booster, depth)
        assert best is not None
        return best[1], best[2]

    def predict_proba(self, X: Inputs) -> Probas:
        """Probabilities per target, ``(n, n_classes)``."""
        import xgboost as xgb

        check_fitted(self, "boosters_")
        n = check_inputs(X, self.feature_dims, self.name)
        matrix = xgb.DMatrix(self._columns(X), nthread=self._threads())
        out: Probas = {}
        for target, booster in self.boosters_.items():
            if isinstance(booster, np.ndarray):
                out[target] = np.tile(booster, (n, 1))
            else:
                booster.set_param({"nthread": self._threads()})
                out[target] = normalize_rows(booster.predict(matrix).reshape(n, -1).astype(np.float64))
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
        if self.reducer_ is not None:
            arrays.update({f"reducer/{k}": v for k, v in self.reducer_.arrays().items()})
        meta = {"model": self.name, "init": init_args(self), "boosters": kinds,
                "best_rounds": {t: int(r) for t, r in self.best_rounds_.items()},
                "reducer": self.reducer_ is not None}
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
            reducer = {k[len("reducer/"):]: v for k, v in arrays.items() if k.startswith("reducer/")}
            model.reducer_ = None if not meta.get("reducer") else ModalityPCA.from_arrays(
                model._modality_groups(), model.params["reduce_components"], model.seed, reducer)
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
    "max_depth": [3, 6],
    "learning_rate": 0.08,
    "subsample": 0.8,
    "colsample_bytree": 0.3,
    "min_child_weight": 1.0,
    "reg_lambda": 1.0,
    "max_bin": 64,
    "early_stopping_rounds": 30,
    "class_weight": None,
    "n_jobs": None,
    "reduce": "auto",
    "reduce_components": 64,
}

register_model("xgboost")(XGBoostModel)
