"""Bagged greedy selection (ensemble/_bagged.py)."""

from __future__ import annotations

import numpy as np

from tests.ensemble.cases import N_CLASSES, good_run, noise_runs


def test_bagged_selection_averages_greedy_over_run_subsets(one_good_among_noise) -> None:
    from mer_ensemble.ensemble import BaggedGreedyBlender

    probas, y, _, good = one_good_among_noise
    blender = BaggedGreedyBlender(n_bags=20, fraction=0.5, seed=0).fit(probas, y)
    assert blender.bag_weights_.shape == (20, 8)
    np.testing.assert_allclose(blender.bag_weights_.sum(axis=1), 1.0)
    np.testing.assert_allclose(blender.weights_, blender.bag_weights_.mean(axis=0))
    with_good = blender.bag_weights_[:, good] > 0
    assert 0 < with_good.sum() < 20  # the good run sits in some subsets only
    assert (blender.bag_weights_[with_good, good] > 0.5).all()  # where it is, greedy leans on it
    assert int(np.argmax(blender.weights_)) == good
    # each bag uses at most half the runs
    assert ((blender.bag_weights_ > 0).sum(axis=1) <= 4).all()
    again = BaggedGreedyBlender(n_bags=20, fraction=0.5, seed=0).fit(probas, y)
    np.testing.assert_array_equal(again.weights_, blender.weights_)


def test_bagging_keeps_a_lucky_run_from_taking_over() -> None:
    """Two equally good runs and a third, slightly better on these rows by luck: greedy keeps
    mostly the lucky one, the bagged blend spreads weight over all three."""
    from mer_ensemble.ensemble import BaggedGreedyBlender

    rng = np.random.default_rng(3)
    y = rng.integers(0, N_CLASSES, 300)
    probas = np.stack([good_run(rng, y, signal=0.3) for _ in range(3)] + list(noise_runs(rng, 3, 300)))
    bagged = BaggedGreedyBlender(n_bags=40, fraction=0.5, seed=0).fit(probas, y)
    assert (bagged.weights_[:3] > 0.1).all() and bagged.weights_[3:].sum() < 0.3
