"""The shared blending problem: one informative run among noise."""

from __future__ import annotations

import numpy as np
import pytest

from tests.ensemble.cases import N_CLASSES, good_run, noise_runs


@pytest.fixture
def one_good_among_noise() -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """8 runs, run 5 informative, the rest noise; 600 rows in 5 folds."""
    rng = np.random.default_rng(0)
    n_rows, good = 600, 5
    y = rng.integers(0, N_CLASSES, n_rows)
    probas = noise_runs(rng, 8, n_rows)
    probas[good] = good_run(rng, y)
    folds = np.arange(n_rows) % 5
    return probas, y, folds, good

