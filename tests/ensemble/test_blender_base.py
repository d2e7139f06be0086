"""The blender contract's input checks (ensemble/_base.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mer_ensemble.ensemble import (
    MeanBlender,
)
from mer_ensemble.errors import BlendError
from tests.ensemble.cases import noise_runs


def test_mismatched_runs_name_what_differs() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 100)
    with pytest.raises(BlendError, match="run 1 has 90 rows but run 0 has 100"):
        MeanBlender().fit([noise_runs(rng, 1, 100, 3)[0], noise_runs(rng, 1, 90, 3)[0]], y)
    with pytest.raises(BlendError, match="run 2 has 4 classes but run 0 has 3"):
        MeanBlender().fit([noise_runs(rng, 1, 100, 3)[0]] * 2 + [noise_runs(rng, 1, 100, 4)[0]], y)
    with pytest.raises(BlendError, match="y has shape"):
        MeanBlender().fit(noise_runs(rng, 2, 100, 3), y[:50])
    with pytest.raises(BlendError, match="class index 3; expected 0..2"):
        MeanBlender().fit(noise_runs(rng, 2, 100, 3), np.full(100, 3))
    with pytest.raises(BlendError, match="run 1 holds NaN"):
        bad = noise_runs(rng, 2, 100, 3)
        bad[1, 5, 0] = np.nan
        MeanBlender().fit(bad, y)
    blender = MeanBlender().fit(noise_runs(rng, 2, 100, 3), y)
    with pytest.raises(BlendError, match="predict got 4 classes but the blender was fitted on 3"):
        blender.predict_proba(noise_runs(rng, 2, 10, 4))
