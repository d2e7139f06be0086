"""Greedy forward selection with replacement (ensemble/_greedy.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mer_ensemble.ensemble import (
    BestSingle,
    GreedyBlender,
)
from mer_ensemble.metrics import weighted_f1
from tests.ensemble.cases import N_CLASSES, noise_runs


def test_greedy_picks_the_good_run_among_noise(one_good_among_noise) -> None:
    probas, y, _, good = one_good_among_noise
    blender = GreedyBlender(steps=25).fit(probas, y)
    assert blender.picks_[0] == good
    assert int(np.argmax(blender.weights_)) == good
    assert blender.weights_[good] > 0.5
    assert blender.weights_.sum() == pytest.approx(1.0)
    assert len(blender.scores_) == 25
    assert blender.best_score_ == pytest.approx(blender.scores_.max())
    assert weighted_f1(y, blender.predict(probas)) == pytest.approx(blender.best_score_)


def test_greedy_mixes_two_complementary_runs() -> None:
    # run 0 knows classes 0/1, run 1 knows classes 2/3: together they beat either alone
    rng = np.random.default_rng(5)
    y = rng.integers(0, N_CLASSES, 800)
    onehot = np.eye(N_CLASSES)[y]
    base = np.full((800, N_CLASSES), 0.25)
    run0 = np.where((y < 2)[:, None], 0.5 * base + 0.5 * onehot, base + rng.normal(0, 0.01, base.shape).clip(-0.2))
    run1 = np.where((y >= 2)[:, None], 0.5 * base + 0.5 * onehot, base + rng.normal(0, 0.01, base.shape).clip(-0.2))
    probas = np.stack([run0.clip(0), run1.clip(0), noise_runs(rng, 1, 800)[0]])
    blender = GreedyBlender(steps=10).fit(probas, y)
    assert blender.weights_[0] > 0 and blender.weights_[1] > 0
    assert blender.best_score_ > max(BestSingle().fit(probas, y).scores_)
