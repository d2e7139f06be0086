"""Greedy ensemble selection with replacement (Caruana et al., ICML 2004)."""

from __future__ import annotations

import numpy as np

from mer_ensemble.ensemble._base import FitContext, ScoreFn, WeightedBlender
from mer_ensemble.ensemble._registry import register_blender
from mer_ensemble.ensemble._scoring import BatchScoreFn, batch_scorer
from mer_ensemble.errors import BlendError

__all__ = ["GreedyBlender", "greedy_picks"]


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
        score_batch = batch_scorer(score_fn, probas.shape[2])
        picks, scores = greedy_picks(probas.astype(np.float32), y, int(self.steps), score_batch)
        best_len = int(np.argmax(scores)) + 1
        self.picks_ = picks[:best_len]
        self.scores_ = np.asarray(scores)
        self.best_score_ = float(scores[best_len - 1])
        self.counts_ = np.bincount(self.picks_, minlength=probas.shape[0])
        self.weights_ = self.counts_ / self.counts_.sum()


def greedy_picks(runs32: np.ndarray, y: np.ndarray, steps: int, score_batch: BatchScoreFn,
                 candidates: np.ndarray | None = None) -> tuple[list[int], list[float]]:
    """Forward selection with replacement over ``candidates`` (run indices; default all).

    ``runs32`` ``(R, n, C)`` float32 (half the memory traffic of float64; argmax is all that is
    needed). Returns the run index picked at each step and the score after it.
    """
    pool = runs32 if candidates is None else runs32[candidates]
    index = np.arange(len(runs32)) if candidates is None else np.asarray(candidates)
    running = np.zeros(runs32.shape[1:], dtype=np.float32)
    trial = np.empty_like(pool)
    picks: list[int] = []
    scores: list[float] = []
    for _ in range(steps):
        np.add(pool, running[None], out=trial)
        cand_scores = score_batch(y, trial.argmax(axis=2))
        pick = int(np.argmax(cand_scores))
        picks.append(int(index[pick]))
        scores.append(float(cand_scores[pick]))
        running += pool[pick]
    return picks, scores
