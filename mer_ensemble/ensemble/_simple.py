"""Blenders with nothing (or almost nothing) to learn: soft vote, hard vote, best single run."""

from __future__ import annotations

import numpy as np

from mer_ensemble.ensemble._base import FitContext, ScoreFn, WeightedBlender
from mer_ensemble.ensemble._registry import register_blender
from mer_ensemble.ensemble._scoring import batch_scorer

__all__ = ["BestSingle", "HardVoteBlender", "MeanBlender"]

#: share of a vote given to the summed probabilities, so that ties break the same way in predict_proba
_TIE_BREAK = 1e-6


@register_blender("mean")
class MeanBlender(WeightedBlender):
    """Soft voting: the equal-weight mean of the runs' probabilities (``weights_ = 1/R``)."""

    label = "equal-weight mean"

    def _fit(
        self, probas: np.ndarray, y: np.ndarray, *, folds: np.ndarray | None, score_fn: ScoreFn, context: FitContext
    ) -> None:
        self.weights_ = np.full(probas.shape[0], 1.0 / probas.shape[0])


@register_blender("vote")
class HardVoteBlender(MeanBlender):
    """Majority vote of the runs' argmax labels.

    Ties between classes with the same number of votes go to the class with the
    larger summed probability. :meth:`predict_proba` returns vote shares
    ``(m, C)`` (votes / R), nudged by ``1e-6`` × the mean probability so that its
    argmax follows the same tie rule, then renormalised.
    """

    label = "hard vote"

    def _blend(self, probas: np.ndarray) -> np.ndarray:
        return vote_shares(probas)


def vote_shares(probas: np.ndarray) -> np.ndarray:
    """Vote shares ``(m, C)`` of ``(R, m, C)`` probabilities, ties nudged towards the larger summed probability."""
    n_runs, n_rows, n_classes = probas.shape
    labels = probas.argmax(axis=2)  # (R, m)
    flat = (labels + np.arange(n_rows)[None, :] * n_classes).ravel()
    votes = np.bincount(flat, minlength=n_rows * n_classes).reshape(n_rows, n_classes).astype(np.float64)
    mean_proba = probas.mean(axis=0)
    mean_proba /= np.maximum(mean_proba.sum(axis=1, keepdims=True), 1e-300)
    return votes / n_runs + _TIE_BREAK * mean_proba


@register_blender("best")
class BestSingle(WeightedBlender):
    """Keep only the run whose argmax labels score best (``weights_`` one-hot, ``scores_`` ``(R,)``).

    Ties go to the lowest run index.
    """

    label = "best single run"

    def _fit(
        self, probas: np.ndarray, y: np.ndarray, *, folds: np.ndarray | None, score_fn: ScoreFn, context: FitContext
    ) -> None:
        self.scores_ = batch_scorer(score_fn, probas.shape[2])(y, probas.argmax(axis=2))
        self.best_run_ = int(np.argmax(self.scores_))
        self.weights_ = np.zeros(probas.shape[0])
        self.weights_[self.best_run_] = 1.0
