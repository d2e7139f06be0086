"""Helpers every family shares: the inner split that model selection inside a fold uses."""

from __future__ import annotations

import numpy as np

from mer_ensemble.models._common import inner_split


def test_inner_split_keeps_groups_whole_and_holds_out_candidates_only():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    groups = np.array([f"g{i // 5}" for i in range(200)], dtype=object)
    candidates = np.arange(200) < 160  # the last 40 rows are pseudo-labelled
    train, val = inner_split(y, fraction=0.15, seed=0, groups=groups, candidates=candidates)
    assert len(set(train) | set(val)) == 200 and not set(train) & set(val)
    assert candidates[val].all()
    assert not set(groups[train]) & set(groups[val])
    assert 0.1 * 160 <= len(val) <= 0.25 * 160
    again = inner_split(y, fraction=0.15, seed=0, groups=groups, candidates=candidates)
    assert np.array_equal(again[1], val)


def test_inner_split_gives_up_on_too_few_rows_or_groups():
    y = np.array([0, 1, 0, 1, 0, 1])
    train, val = inner_split(y, fraction=0.2, seed=0)
    assert len(val) == 0 and len(train) == 6
    one_group = np.array(["a"] * 40, dtype=object)
    train, val = inner_split(np.tile([0, 1], 20), fraction=0.2, seed=0, groups=one_group)
    assert len(val) == 0
