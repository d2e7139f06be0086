"""Per-group (per-speaker) feature normalisation, label-free.

Prototype for the project: statistics come from each group's own rows (features only), so a
test speaker is normalised with its own test rows; rows without a group, and groups with fewer
than ``min_rows`` rows, fall back to the global statistics.
"""

from __future__ import annotations

import numpy as np


def group_standardise(X, groups, *, min_rows=10, shrink=0.0, scale=True, eps=1e-6):
    """Standardise each column of ``X`` ``(n, D)`` within each group.

    For a group g with n_g rows, mean m_g and variance v_g, the normalised row is
    ``(x - m'_g) / sqrt(v'_g)`` with the shrunken statistics
    ``m'_g = a m_g + (1 - a) m``, ``v'_g = a v_g + (1 - a) v``, ``a = n_g / (n_g + shrink)``,
    where m, v are the global statistics over all rows of ``X``. ``shrink=0`` is plain
    per-group z-scoring; ``scale=False`` only centres (divides by the global sd).
    Rows whose group is ``None``/NaN/"" or whose group has fewer than ``min_rows`` rows use
    the global statistics (a = 0). Returns a new float array; labels are never used.
    """
    X = np.asarray(X, dtype=np.float64)
    m = X.mean(0)
    v = X.var(0)
    out = (X - m) / np.sqrt(v + eps)
    if groups is None:
        return out
    groups = np.asarray(groups, dtype=object)
    missing = np.array([g is None or g == "" or (isinstance(g, float) and np.isnan(g)) for g in groups])
    for g in set(groups[~missing].tolist()):
        idx = np.flatnonzero(groups == g)
        if len(idx) < max(2, min_rows):
            continue
        a = len(idx) / (len(idx) + shrink)
        mg = a * X[idx].mean(0) + (1 - a) * m
        vg = a * X[idx].var(0) + (1 - a) * v if scale else v
        out[idx] = (X[idx] - mg) / np.sqrt(vg + eps)
    return out
