"""The mean of the top-k runs (ensemble/_topk.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mer_ensemble.errors import BlendError
from tests.ensemble.cases import N_CLASSES, good_run, noise_runs


def test_topk_picks_the_informative_runs_with_equal_weights() -> None:
    from mer_ensemble.ensemble import TopKMeanBlender

    rng = np.random.default_rng(1)
    y = rng.integers(0, N_CLASSES, 500)
    probas = np.concatenate([np.stack([good_run(rng, y, signal=0.25) for _ in range(3)]), noise_runs(rng, 5, 500)])
    auto = TopKMeanBlender().fit(probas, y)
    assert auto.k_ == 3 and set(auto.order_[:3]) == {0, 1, 2}
    np.testing.assert_allclose(auto.weights_[:3], 1 / 3)
    assert TopKMeanBlender(k=0.5).fit(probas, y).k_ == 4 and TopKMeanBlender(k=2).fit(probas, y).k_ == 2
    with pytest.raises(BlendError, match="topk: k=0"):
        TopKMeanBlender(k=0).fit(probas, y)
