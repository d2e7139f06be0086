"""Mean, hard vote and best single run (ensemble/_simple.py)."""

from __future__ import annotations

import numpy as np

from mer_ensemble.ensemble import (
    BestSingle,
    HardVoteBlender,
    MeanBlender,
)


def test_mean_is_the_equal_weight_average(one_good_among_noise) -> None:
    probas, y, _, _ = one_good_among_noise
    blender = MeanBlender().fit(probas, y)
    np.testing.assert_allclose(blender.predict_proba(probas), probas.mean(axis=0))


def test_hard_vote_majority_and_tie_break() -> None:
    # row 0: votes 0, 0, 1 -> 0; row 1: votes 0, 1 and a third run for class 2 -> tie 0/1,
    # broken by the summed probability, which favours 1
    probas = np.array(
        [
            [[0.6, 0.4, 0.0], [0.50, 0.45, 0.05]],
            [[0.7, 0.3, 0.0], [0.05, 0.90, 0.05]],
            [[0.4, 0.6, 0.0], [0.00, 0.40, 0.60]],
        ]
    )
    blender = HardVoteBlender().fit(probas, np.array([0, 1]))
    np.testing.assert_array_equal(blender.predict(probas), [0, 1])
    shares = blender.predict_proba(probas)
    np.testing.assert_allclose(shares, [[2 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-5)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)


def test_best_single_picks_thegood_run(one_good_among_noise) -> None:
    probas, y, _, good = one_good_among_noise
    blender = BestSingle().fit(probas, y)
    assert blender.best_run_ == good
    np.testing.assert_array_equal(blender.weights_, np.eye(8)[good])
