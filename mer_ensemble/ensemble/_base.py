"""The blender contract and the input checks every blender shares.

Shapes used throughout the package: ``R`` runs (model runs whose predictions are
blended), ``n`` labelled rows, ``m`` rows to predict, ``C`` classes of one target.
``probas`` is ``(R, n, C)``: each run's out-of-fold class probabilities.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mer_ensemble.ensemble._scoring import ScoreFn, resolve_score_fn
from mer_ensemble.errors import BlendError
from mer_ensemble.metrics import weighted_f1
from mer_ensemble.probas import normalize_rows

__all__ = [
    "Blender",
    "FitContext",
    "ProbasLike",
    "ScoreFn",
    "WeightedBlender",
    "as_probas",
    "check_fit_inputs",
]

#: a ``(R, n, C)`` array, or a sequence of ``R`` arrays of shape ``(n, C)``
ProbasLike = np.ndarray | Sequence[np.ndarray]


@dataclass(frozen=True)
class FitContext:
    """Where a blender that keeps state between fits may keep it (given to ``fit``, keyword only).

    ``storage``: an Optuna storage URL, path or object for blenders that run a study
    (None: in memory); ``study_name``: the study to create or resume there. The blend
    layer passes one for the final fit of each method; nested fits run in memory.
    ``repeatable``: a stored study is topped up to the blender's trial count instead of
    growing by it, and only its first trials count, so fitting again on the same data
    gives the same result (the blend layer sets it: two blends of one store are identical).
    """

    storage: Any = None
    study_name: str | None = None
    repeatable: bool = False


def as_probas(probas: ProbasLike, *, what: str = "probas") -> np.ndarray:
    """Stack runs into one ``(R, n, C)`` float64 array, or raise :class:`BlendError` naming what differs."""
    if isinstance(probas, np.ndarray) and probas.ndim == 3:
        stacked = probas.astype(np.float64, copy=False)
    else:
        runs = [probas] if isinstance(probas, np.ndarray) and probas.ndim == 2 else [np.asarray(p) for p in probas]
        _check_run_shapes(runs, what)
        stacked = np.stack(runs).astype(np.float64, copy=False)
    if stacked.shape[0] == 0:
        raise BlendError(f"{what}: no runs to blend")
    if stacked.shape[2] < 2:
        raise BlendError(f"{what}: runs have {stacked.shape[2]} class column(s); need at least 2")
    flat = stacked.reshape(stacked.shape[0], -1)
    if not np.isfinite(flat).all():
        bad = int(np.flatnonzero(~np.isfinite(flat).all(axis=1))[0])
        raise BlendError(f"{what}: run {bad} holds NaN or infinite probabilities")
    if (flat < 0).any():
        bad = int(np.flatnonzero((flat < 0).any(axis=1))[0])
        raise BlendError(f"{what}: run {bad} holds negative probabilities")
    return stacked


def _check_run_shapes(runs: list[np.ndarray], what: str) -> None:
    """Check every run is ``(n, C)`` with run 0's ``n`` and ``C``; the error names the first that differs."""
    if not runs:
        raise BlendError(f"{what}: no runs to blend")
    for r, run in enumerate(runs):
        if run.ndim != 2:
            raise BlendError(f"{what}: run {r} has shape {run.shape}; expected (n_rows, n_classes)")
    n_rows, n_classes = runs[0].shape
    for r, run in enumerate(runs[1:], start=1):
        if run.shape[0] != n_rows:
            raise BlendError(f"{what}: run {r} has {run.shape[0]} rows but run 0 has {n_rows}")
        if run.shape[1] != n_classes:
            raise BlendError(f"{what}: run {r} has {run.shape[1]} classes but run 0 has {n_classes}")


def check_fit_inputs(
    probas: ProbasLike, y: np.ndarray, folds: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate ``fit`` inputs: ``probas`` ``(R, n, C)``, ``y`` ``(n,)`` in ``[0, C)``, ``folds`` ``(n,)``."""
    stacked = as_probas(probas)
    n_rows, n_classes = stacked.shape[1:]
    y = np.asarray(y)
    if y.shape != (n_rows,):
        raise BlendError(f"y has shape {y.shape} but the runs have {n_rows} rows")
    if n_rows == 0:
        raise BlendError("no labelled rows to fit the blender on")
    if not np.issubdtype(y.dtype, np.integer):
        raise BlendError(f"y must hold integer class indices; got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= n_classes:
        bad = int(y[(y < 0) | (y >= n_classes)][0])
        raise BlendError(f"y holds class index {bad}; expected 0..{n_classes - 1} (drop unknown -1 rows first)")
    if folds is not None:
        folds = np.asarray(folds)
        if folds.shape != (n_rows,):
            raise BlendError(f"folds has shape {folds.shape} but the runs have {n_rows} rows")
    return stacked, y.astype(np.int64, copy=False), folds


class Blender(ABC):
    """Combines ``R`` runs' class probabilities for one target into one ``(m, C)`` prediction.

    ``__init__`` stores hyper-parameters only; :meth:`fit` learns from out-of-fold
    probabilities and sets attributes ending in ``_``; :meth:`predict_proba` blends
    new rows of the same runs.
    """

    #: registry name
    name: ClassVar[str] = ""
    #: how tables and reports call the method
    label: ClassVar[str] = ""

    def fit(
        self,
        probas: ProbasLike,
        y: np.ndarray,
        *,
        folds: np.ndarray | None = None,
        score_fn: ScoreFn = weighted_f1,
        context: FitContext | None = None,
    ) -> Blender:
        """Learn from ``probas`` ``(R, n, C)`` and labels ``y`` ``(n,)``; ``folds`` ``(n,)`` fold id per row.

        Checks the inputs (shapes, finite non-negative probabilities, labels in range),
        remembers ``R`` and ``C`` for :meth:`predict_proba`, then calls the method's
        :meth:`_fit`. Returns ``self``.
        """
        stacked, y, folds = check_fit_inputs(probas, y, folds)
        self._remember_shape(stacked)
        self._fit(stacked, y, folds=folds, score_fn=resolve_score_fn(score_fn), context=context or FitContext())
        return self

    @abstractmethod
    def _fit(
        self, probas: np.ndarray, y: np.ndarray, *, folds: np.ndarray | None, score_fn: ScoreFn, context: FitContext
    ) -> None:
        """Learn from checked ``(R, n, C)`` probabilities and ``(n,)`` labels; set attributes ending in ``_``."""

    @abstractmethod
    def _blend(self, probas: np.ndarray) -> np.ndarray:
        """Blend checked ``(R, m, C)`` probabilities into ``(m, C)`` (rows need not sum to 1)."""

    def predict_proba(self, probas: ProbasLike) -> np.ndarray:
        """Blended class probabilities ``(m, C)``, rows summing to 1, for ``probas`` ``(R, m, C)``."""
        stacked = self._check_predict(probas)
        return normalize_rows(self._blend(stacked))

    def predict(self, probas: ProbasLike) -> np.ndarray:
        """Blended class indices ``(m,)``."""
        return self.predict_proba(probas).argmax(axis=1)

    def _remember_shape(self, probas: np.ndarray) -> None:
        self.n_runs_, _, self.n_classes_ = probas.shape

    def _check_predict(self, probas: ProbasLike) -> np.ndarray:
        if not hasattr(self, "n_runs_"):
            raise BlendError(f"{type(self).__name__} is not fitted; call fit() first")
        stacked = as_probas(probas)
        if stacked.shape[0] != self.n_runs_:
            raise BlendError(f"predict got {stacked.shape[0]} runs but the blender was fitted on {self.n_runs_}")
        if stacked.shape[2] != self.n_classes_:
            raise BlendError(f"predict got {stacked.shape[2]} classes but the blender was fitted on {self.n_classes_}")
        return stacked

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters given to ``__init__``, by name."""
        params = inspect.signature(type(self).__init__).parameters.values()
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return {p.name: getattr(self, p.name) for p in params if p.name != "self" and p.kind in named}

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary for sidecars and reports: name, parameters and learned weights."""
        out: dict[str, Any] = {"blender": self.name or type(self).__name__, "params": _jsonable(self.get_params())}
        if hasattr(self, "weights_"):
            out["weights"] = [round(float(w), 6) for w in self.weights_]
        return out

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


class WeightedBlender(Blender):
    """A blender whose prediction is the ``weights_``-weighted mean of the runs' probabilities."""

    #: ``(R,)`` non-negative, summing to 1; set by ``fit``
    weights_: np.ndarray

    def _blend(self, probas: np.ndarray) -> np.ndarray:
        return np.tensordot(self.weights_, probas, axes=1)


def _jsonable(value: Any) -> Any:
    """``value`` as JSON-friendly data: blenders described, containers walked, the rest ``repr``-ed."""
    if isinstance(value, Blender):
        return value.describe()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    return repr(value)
