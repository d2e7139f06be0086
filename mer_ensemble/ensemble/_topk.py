"""Mean of the top-k runs: the equal-weight average of the runs that score best on their own."""

from __future__ import annotations

import math

import numpy as np

from mer_ensemble.ensemble._base import FitContext, ScoreFn, WeightedBlender
from mer_ensemble.ensemble._registry import register_blender
from mer_ensemble.ensemble._scoring import batch_scorer
from mer_ensemble.errors import BlendError

__all__ = ["TopKMeanBlender"]


@register_blender("topk")
class TopKMeanBlender(WeightedBlender):
    """Equal weights on the ``k`` runs with the best individual scores on the fitted rows.

    Parameters
    ----------
    k: ``"auto"`` (the k whose top-k mean scores best on the fitted rows; ties go to the larger
        k, which averages more noise away), an integer, or a fraction in (0, 1) of the runs.
        Only one integer is fitted, so the choice overfits little.

    Learned: ``weights_`` ``(R,)``; ``k_``; ``order_`` runs best first; ``k_scores_`` ``(R,)``
    score of the top-k mean for every k (``"auto"`` only).
    """

    label = "mean of the top-k runs"

    def __init__(self, k: int | float | str = "auto") -> None:
        self.k = k

    def _fit(
        self, probas: np.ndarray, y: np.ndarray, *, folds: np.ndarray | None, score_fn: ScoreFn, context: FitContext
    ) -> None:
        n_runs = probas.shape[0]
        score_batch = batch_scorer(score_fn, probas.shape[2])
        self.order_ = np.argsort(-score_batch(y, probas.argmax(axis=2)), kind="stable")
        if self.k == "auto":
            running = np.cumsum(probas[self.order_], axis=0)  # (R, n, C): the top-1, top-2, ... sums
            self.k_scores_ = score_batch(y, running.argmax(axis=2))
            k = int(np.flatnonzero(self.k_scores_ >= self.k_scores_.max() - 1e-12)[-1]) + 1
        elif isinstance(self.k, float) and 0 < self.k < 1:
            k = math.ceil(self.k * n_runs)
        elif isinstance(self.k, int) and not isinstance(self.k, bool) and self.k >= 1:
            k = min(self.k, n_runs)
        else:
            raise BlendError(f"topk: k={self.k!r} must be 'auto', an integer >= 1 or a fraction in (0, 1)")
        self.k_ = k
        self.weights_ = np.zeros(n_runs)
        self.weights_[self.order_[:k]] = 1.0 / k
