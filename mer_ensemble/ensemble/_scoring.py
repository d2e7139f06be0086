"""Scoring many candidate predictions at once, for the inner loops of the search blenders.

A batch scorer takes ``y`` ``(n,)`` and ``preds`` ``(K, n)`` (K candidate label
vectors) and returns ``(K,)`` scores. The competition metrics from
:mod:`mer_ensemble.metrics` get exact vectorised versions built on per-class
counts from one ``np.bincount``; any other ``score_fn`` falls back to a loop.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mer_ensemble.metrics import accuracy, get_metric, macro_f1, micro_f1, weighted_f1

__all__ = ["BatchScoreFn", "ScoreFn", "batch_scorer", "resolve_score_fn"]

#: ``score_fn(y_true (n,), y_pred (n,)) -> float``, higher is better
ScoreFn = Callable[[np.ndarray, np.ndarray], float]

#: ``batch(y (n,), preds (K, n)) -> (K,)``
BatchScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _class_counts(y: np.ndarray, preds: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives and predicted counts ``(K, C)`` and support ``(C,)``."""
    n_cand = preds.shape[0]
    flat = (preds + (np.arange(n_cand, dtype=np.int64) * n_classes)[:, None]).ravel()
    pred_counts = np.bincount(flat, minlength=n_cand * n_classes).reshape(n_cand, n_classes)
    hits = (preds == y[None, :]).ravel()
    tp = np.bincount(flat[hits], minlength=n_cand * n_classes).reshape(n_cand, n_classes)
    support = np.bincount(y, minlength=n_classes)[:n_classes]
    return tp.astype(np.float64), pred_counts.astype(np.float64), support.astype(np.float64)


def _f1_per_class(tp: np.ndarray, pred_counts: np.ndarray, support: np.ndarray) -> np.ndarray:
    denom = pred_counts + support[None, :]
    return np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def _batch_weighted_f1(y: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    tp, pred_counts, support = _class_counts(y, preds, n_classes)
    f1 = _f1_per_class(tp, pred_counts, support)
    return (f1 * support[None, :]).sum(axis=1) / max(support.sum(), 1.0)


def _batch_macro_f1(y: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    tp, pred_counts, support = _class_counts(y, preds, n_classes)
    f1 = _f1_per_class(tp, pred_counts, support)
    present = (support[None, :] > 0) | (pred_counts > 0)
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def _batch_accuracy(y: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    return (preds == y[None, :]).mean(axis=1) if y.size else np.zeros(preds.shape[0])


_FAST: dict[Callable, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    weighted_f1: _batch_weighted_f1,
    macro_f1: _batch_macro_f1,
    micro_f1: _batch_accuracy,
    accuracy: _batch_accuracy,
}


def resolve_score_fn(score_fn: ScoreFn | str) -> ScoreFn:
    """A metric name from :data:`mer_ensemble.metrics.METRICS` or a callable, as a callable."""
    return get_metric(score_fn) if isinstance(score_fn, str) else score_fn


def batch_scorer(score_fn: ScoreFn | str, n_classes: int) -> BatchScoreFn:
    """Vectorised ``(y (n,), preds (K, n)) -> (K,)`` version of ``score_fn`` for ``n_classes`` classes.

    Exact for the metrics of :mod:`mer_ensemble.metrics` (rows with ``y == -1`` are
    ignored, as there); other callables are called once per candidate.
    """
    score_fn = resolve_score_fn(score_fn)
    fast = _FAST.get(score_fn)
    if fast is None:

        def loop(y: np.ndarray, preds: np.ndarray) -> np.ndarray:
            return np.array([score_fn(y, p) for p in preds], dtype=np.float64)

        return loop

    def vectorised(y: np.ndarray, preds: np.ndarray) -> np.ndarray:
        preds = np.atleast_2d(preds)
        known = y >= 0
        if not known.all():
            y, preds = y[known], preds[:, known]
        return fast(y.astype(np.int64, copy=False), preds.astype(np.int64, copy=False), n_classes)

    return vectorised
