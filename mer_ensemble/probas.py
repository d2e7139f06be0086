"""Class-probability helpers shared by the model families and the blenders."""

from __future__ import annotations

import numpy as np

__all__ = ["normalize_rows"]


def normalize_rows(proba: np.ndarray) -> np.ndarray:
    """A copy of ``proba`` ``(n, C)`` with every row summing to 1; a row that sums to 0 (or to
    nothing finite) becomes uniform instead of a division by zero. Floating inputs keep their
    dtype, others become float64."""
    proba = np.asarray(proba)
    if proba.dtype.kind != "f":
        proba = proba.astype(np.float64)
    total = proba.sum(axis=1, keepdims=True)
    uniform = np.full_like(proba, 1.0 / proba.shape[1])
    return np.divide(proba, total, out=uniform, where=total > 0)
