"""Per-class additive biases on log-probabilities, tuned by coordinate search for F1-type metrics.

A bias ``b`` ``(C,)`` moves the decision: labels are ``argmax(log p + b)``. Raising
one class's bias trades its precision for recall, which helps weighted or macro F1
when a blend under-predicts a class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mer_ensemble.ensemble._base import Blender, FitContext, ScoreFn
from mer_ensemble.ensemble._scoring import batch_scorer
from mer_ensemble.errors import BlendError
from mer_ensemble.metrics import weighted_f1
from mer_ensemble.probas import normalize_rows

__all__ = ["ClassBias", "apply_class_bias", "tune_class_bias"]

DEFAULT_GRID = tuple(np.round(np.linspace(-3.0, 3.0, 61), 6))
_FLOOR = 1e-12


def _log(proba: np.ndarray) -> np.ndarray:
    return np.log(np.clip(proba, _FLOOR, None))


def apply_class_bias(proba: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``softmax(log proba + bias)``: ``proba`` ``(m, C)``, ``bias`` ``(C,)`` → ``(m, C)`` rows summing to 1."""
    logits = _log(proba) + np.asarray(bias)[None, :]
    logits -= logits.max(axis=1, keepdims=True)
    return normalize_rows(np.exp(logits))


def _labels_with_class_offset(logits: np.ndarray, cls: int, offsets: np.ndarray) -> np.ndarray:
    """Argmax labels ``(G, m)`` of ``logits`` ``(m, C)`` with ``offsets`` ``(G,)`` added to column ``cls``.

    Same tie rule as ``np.argmax`` (lowest index wins).
    """
    others = logits.copy()
    others[:, cls] = -np.inf
    other_label = others.argmax(axis=1)
    other_best = others[np.arange(len(logits)), other_label]
    value = logits[:, cls][None, :] + offsets[:, None]
    wins = (value > other_best[None, :]) | ((value == other_best[None, :]) & (cls < other_label[None, :]))
    return np.where(wins, cls, other_label[None, :])


def tune_class_bias(
    proba: np.ndarray,
    y: np.ndarray,
    score_fn: ScoreFn = weighted_f1,
    *,
    grid: Sequence[float] | None = None,
    n_rounds: int = 3,
) -> np.ndarray:
    """Coordinate search for the bias ``(C,)`` maximising ``score_fn(y, argmax(log proba + bias))``.

    ``proba`` ``(n, C)``, ``y`` ``(n,)``. Each round tries, class by class, every value of
    ``grid`` for that class's bias (the others fixed) and keeps the best only if it
    strictly improves the score; stops after ``n_rounds`` or a round without change.
    Starts from zero, so the result never scores below the unbiased argmax.
    """
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if proba.ndim != 2 or proba.shape[0] != y.shape[0]:
        raise BlendError(f"class bias: proba has shape {proba.shape} but y has shape {y.shape}")
    offsets = np.asarray(DEFAULT_GRID if grid is None else grid, dtype=np.float64)
    n_classes = proba.shape[1]
    score_batch = batch_scorer(score_fn, n_classes)
    log_proba = _log(proba)
    bias = np.zeros(n_classes)
    current = float(score_batch(y, log_proba.argmax(axis=1)[None, :])[0])
    for _ in range(int(n_rounds)):
        changed = False
        for cls in range(n_classes):
            logits = log_proba + bias[None, :]
            scores = score_batch(y, _labels_with_class_offset(logits, cls, offsets - bias[cls]))
            best = int(np.argmax(scores))
            if scores[best] > current + 1e-12:
                bias[cls] = offsets[best]
                current = float(scores[best])
                changed = True
        if not changed:
            break
    return bias


class ClassBias(Blender):
    """Wrap any blender and add a tuned per-class bias to its log-probabilities.

    The bias is tuned on the wrapped blender's predictions for the fitted rows:
    its ``oof_proba_`` when it has one (stacking), otherwise its in-sample blend.
    Estimate the wrapped result out of sample with :func:`nested_score`.

    Learned: ``bias_`` ``(C,)``; ``blender`` is fitted in place.
    """

    name = "bias"
    label = "class bias"

    def __init__(self, blender: Blender, grid: Sequence[float] | None = None, n_rounds: int = 3) -> None:
        self.blender = blender
        self.grid = grid
        self.n_rounds = n_rounds

    def _fit(
        self, probas: np.ndarray, y: np.ndarray, *, folds: np.ndarray | None, score_fn: ScoreFn, context: FitContext
    ) -> None:
        self.blender.fit(probas, y, folds=folds, score_fn=score_fn, context=context)
        base = getattr(self.blender, "oof_proba_", None)
        if base is None:
            base = self.blender.predict_proba(probas)
        self.bias_ = tune_class_bias(base, y, score_fn, grid=self.grid, n_rounds=self.n_rounds)
        if hasattr(self.blender, "weights_"):
            self.weights_ = self.blender.weights_

    def _blend(self, probas: np.ndarray) -> np.ndarray:
        return apply_class_bias(self.blender.predict_proba(probas), self.bias_)

    def describe(self) -> dict[str, Any]:
        """The wrapped blender's description plus ``class_bias`` ``(C,)`` and the search settings."""
        out = self.blender.describe()
        out["class_bias"] = [round(float(b), 6) for b in self.bias_] if hasattr(self, "bias_") else None
        out["class_bias_params"] = {"grid": None if self.grid is None else list(self.grid), "n_rounds": self.n_rounds}
        return out
