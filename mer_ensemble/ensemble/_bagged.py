"""Bagged ensemble selection (Caruana et al., ICML 2004, section 4): greedy selection on random
subsets of the runs, the bags' weights averaged."""

from __future__ import annotations

import numpy as np

from mer_ensemble.ensemble._base import FitContext, ScoreFn, WeightedBlender
from mer_ensemble.ensemble._greedy import greedy_picks
from mer_ensemble.ensemble._registry import register_blender
from mer_ensemble.ensemble._scoring import batch_scorer
from mer_ensemble.errors import BlendError

__all__ = ["BaggedGreedyBlender"]


@register_blender("subset_greedy")
class BaggedGreedyBlender(WeightedBlender):
    """Greedy selection with replacement run on ``n_bags`` random subsets of the runs, each of
    ``max(2, round(fraction * R))`` runs; each bag keeps its best prefix, and the blend's weights
    are the mean of the bags' weights. Bagging over runs limits how far one lucky run (or one lucky
    pick on a small labelled set) can pull the blend, so it overfits the OOF rows less than plain
    greedy selection.

    Parameters
    ----------
    n_bags: number of random subsets.
    fraction: share of the runs in each subset.
    steps: greedy picks per bag.
    seed: seed of the subsets.

    Learned: ``weights_`` ``(R,)``; ``bag_weights_`` ``(n_bags, R)``.
    """

    label = "bagged greedy (random run subsets)"

    def __init__(self, n_bags: int = 30, fraction: float = 0.5, steps: int = 25, seed: int = 0) -> None:
        self.n_bags = n_bags
        self.fraction = fraction
        self.steps = steps
        self.seed = seed

    def _fit(
        self, probas: np.ndarray, y: np.ndarray, *, folds: np.ndarray | None, score_fn: ScoreFn, context: FitContext
    ) -> None:
        if int(self.n_bags) < 1 or int(self.steps) < 1 or not 0 < float(self.fraction) <= 1:
            raise BlendError(f"subset_greedy: n_bags and steps must be >= 1 and fraction in (0, 1]; got "
                             f"n_bags={self.n_bags}, steps={self.steps}, fraction={self.fraction}")
        n_runs = probas.shape[0]
        size = min(n_runs, max(2, int(round(float(self.fraction) * n_runs))))
        runs32 = probas.astype(np.float32)
        score_batch = batch_scorer(score_fn, probas.shape[2])
        rng = np.random.default_rng(self.seed)
        bags = np.zeros((int(self.n_bags), n_runs))
        for b in range(int(self.n_bags)):
            subset = np.sort(rng.choice(n_runs, size, replace=False))
            picks, scores = greedy_picks(runs32, y, int(self.steps), score_batch, subset)
            kept = picks[: int(np.argmax(scores)) + 1]
            bags[b] = np.bincount(kept, minlength=n_runs) / len(kept)
        self.bag_weights_ = bags
        self.weights_ = bags.mean(axis=0)
