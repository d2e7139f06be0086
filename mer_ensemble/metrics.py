"""Classification metrics used by the competitions, and the combined scores.

All functions take integer label arrays of shape ``(n_samples,)``; rows whose
true label is ``-1`` (unknown) are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from mer_ensemble.errors import MetricError

__all__ = [
    "METRICS",
    "accuracy",
    "combine_scores",
    "f1_score",
    "get_metric",
    "joint_score",
    "macro_f1",
    "micro_f1",
    "weighted_f1",
]


def _known(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise MetricError(f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}")
    keep = y_true >= 0
    return y_true[keep].astype(np.int64), y_pred[keep].astype(np.int64)


def _confusion_counts(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return true positives, predicted counts and support per class, each ``(n_classes,)``."""
    tp = np.bincount(y_true[y_true == y_pred], minlength=n_classes)[:n_classes]
    pred = np.bincount(y_pred, minlength=n_classes)[:n_classes]
    support = np.bincount(y_true, minlength=n_classes)[:n_classes]
    return tp.astype(float), pred.astype(float), support.astype(float)


def f1_score(
    y_true: np.ndarray, y_pred: np.ndarray, average: str = "weighted", n_classes: int | None = None
) -> float:
    """F1 score with scikit-learn's semantics for ``average`` in weighted/macro/micro.

    Like scikit-learn with ``zero_division=0``; macro and weighted averages run over
    the labels present in ``y_true`` or ``y_pred``.
    """
    y_true, y_pred = _known(y_true, y_pred)
    if y_true.size == 0:
        return 0.0
    k = int(max(y_true.max(), y_pred.max()) + 1) if n_classes is None else n_classes
    k = max(k, int(max(y_true.max(), y_pred.max()) + 1))
    tp, pred, support = _confusion_counts(y_true, y_pred, k)
    if average == "micro":
        total = support.sum()
        return float(tp.sum() / total) if total else 0.0
    denom = pred + support
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = (support > 0) | (pred > 0)
    if average == "macro":
        return float(f1[present].mean()) if present.any() else 0.0
    if average == "weighted":
        return float((f1 * support).sum() / support.sum()) if support.sum() else 0.0
    raise MetricError(f"unknown average {average!r}; expected one of weighted, macro, micro")


def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Support-weighted F1 (MER2024, MEIJU Track 1)."""
    return f1_score(y_true, y_pred, "weighted")


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean of per-class F1."""
    return f1_score(y_true, y_pred, "macro")


def micro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Micro F1 (MEIJU Track 2); equals accuracy for single-label data."""
    return f1_score(y_true, y_pred, "micro")


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of known rows predicted correctly."""
    y_true, y_pred = _known(y_true, y_pred)
    return float((y_true == y_pred).mean()) if y_true.size else 0.0


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "weighted_f1": weighted_f1,
    "macro_f1": macro_f1,
    "micro_f1": micro_f1,
    "accuracy": accuracy,
}


def get_metric(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """Look a metric up by name; the error lists the valid names."""
    try:
        return METRICS[name]
    except KeyError:
        raise MetricError(f"unknown metric {name!r}; expected one of {', '.join(METRICS)}") from None


def joint_score(emotion: float, intent: float) -> float:
    """MEIJU joint score ``2·E·I/(E+I)``; 0 when both are 0."""
    total = emotion + intent
    return 0.0 if total <= 0 else 2.0 * emotion * intent / total


def combine_scores(scores: Mapping[str, float] | Sequence[float], how: str = "joint") -> float:
    """Combine per-target scores into one number.

    ``joint`` is the harmonic mean (for two targets exactly the MEIJU joint score;
    0 if any score is 0); ``mean`` is the arithmetic mean. One target: its score.
    """
    values = list(scores.values()) if isinstance(scores, Mapping) else list(scores)
    if not values:
        raise MetricError("no scores to combine")
    if len(values) == 1:
        return float(values[0])
    if how == "mean":
        return float(np.mean(values))
    if how == "joint":
        if any(v <= 0 for v in values):
            return 0.0
        return float(len(values) / sum(1.0 / v for v in values))
    raise MetricError(f"unknown combine {how!r}; expected joint or mean")
