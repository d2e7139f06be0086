"""Constructed blending problems where the right answer is known (the fixture is in conftest.py)."""

from __future__ import annotations

import numpy as np

N_CLASSES = 4


def noise_runs(rng: np.random.Generator, n_runs: int, n_rows: int, n_classes: int = N_CLASSES) -> np.ndarray:
    """``(n_runs, n_rows, n_classes)`` random probabilities that carry no information."""
    return rng.dirichlet(np.ones(n_classes), size=(n_runs, n_rows))



def good_run(rng: np.random.Generator, y: np.ndarray, n_classes: int = N_CLASSES, signal: float = 0.35) -> np.ndarray:
    """``(n_rows, n_classes)`` probabilities leaning towards the true class (right most of the time)."""
    noise = rng.dirichlet(np.ones(n_classes), size=len(y))
    return (1 - signal) * noise + signal * np.eye(n_classes)[y]

