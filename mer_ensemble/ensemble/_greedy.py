"""Greedy ensemble selection with replacement (Caruana et al., ICML 2004)."""

from __future__ import annotations

import numpy as np

from mer_ensemble.ensemble._base import FitContext, ScoreFn, WeightedBlender
from mer_ensemble.ensemble._registry import register_blender
from mer_ensemble.ensemble._scoring import batch_scorer
from mer_ensemble.errors import BlendError

__all__ = ["GreedyBlender"]


@register_blender("greedy")
class GreedyBlender(WeightedBlender):
    """Repeatedly add (with replacement) the run whose addition scores best; keep the best prefix.

    Each step scores all ``R`` candidate ensembles at once: the running sum of the
    picked runs' probabilities ``(n, C)`` plus each run ``(R, n, C)``, argmax over
    classes, then one vectorised metric call on ``(R, n)`` labels. The first step
    therefore picks the best single run. Ties go to the lowest run index; the kept
    prefix is the shortest one reaching the best score.

    Parameters
    ----------
    steps: number of picks (the ensemble size before the best prefix is kept).

    Learned: ``weights_`` ``(R,)`` = pick counts / picks in the best prefix;
    ``counts_`` ``(R,)`` pick counts; ``picks_`` run index per kept step;
    ``scores_`` ``(steps,)`` score after each step; ``best_score_``.
    """

    label = "greedy selection"

    def __init__(self, steps: int = 25) -> None:
        self.steps = steps

    def _fit(
        self, probas: np.ndarray, y: np.ndarray, *, folds: np.ndarray | None, score_fn: ScoreFn, context: FitContext
    ) -> None:
        if int(self.steps) < 1:
            raise BlendError(f"greedy: steps must be at least 1; got {self.steps}")
        n_runs = probas.shape[0]
        # float32 halves the memory traffic of the (R, n, C) candidate sums; argmax is all we need
        runs32 = probas.astype(np.float32)
        score_batch = batch_scorer(score_fn, probas.shape[2])
        running = np.zeros(probas.shape[1:], dtype=np.float32)
        candidates = np.empty_like(runs32)
        picks: list[int] = []
        scores: list[float] = []
        for _ in range(int(self.steps)):
            np.add(runs32, running[None], out=candidates)
            cand_scores = score_batch(y, candidates.argmax(axis=2))
            pick = int(np.argmax(cand_scores))
            picks.append(pick)
            scores.append(float(cand_scores[pick]))
            running += runs32[pick]
        best_len = int(np.argmax(scores)) + 1
        self.picks_ = picks[:best_len]
        self.scores_ = np.asarray(scores)
        self.best_score_ = float(scores[best_len - 1])
        self.counts_ = np.bincount(self.picks_, minlength=n_runs)
        self.weights_ = self.counts_ / self.counts_.sum()
