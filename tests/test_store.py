"""The prediction store: one record per run, complete or absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mer_ensemble.errors import StoreError
from mer_ensemble.store import RunRecord, list_run_keys, load_run, save_run


def _record(key: str) -> RunRecord:
    rng = np.random.default_rng(0)
    return RunRecord(manifest={"key": key, "targets": ["emotion"], "classes": {"emotion": ["a", "b"]}},
                     oof={"emotion": rng.random((4, 2))}, test={"emotion": rng.random((2, 2))},
                     pool={"emotion": rng.random((3, 2))}, pool_by_fold={"emotion": rng.random((2, 3, 2))},
                     rows=np.arange(4), fold=np.array([0, 1, 0, 1]), test_rows=np.array([4, 5]),
                     pool_rows=np.array([6, 7, 8]), extra={"test_by_fold/emotion": rng.random((2, 2, 2))})


def test_round_trip_and_only_complete_records_are_listed(tmp_path: Path):
    saved = _record("lin")
    save_run(tmp_path, saved)
    (tmp_path / "store" / "half.npz").write_bytes(b"")  # arrays without a manifest: not a record
    assert list_run_keys(tmp_path) == ["lin"]
    back = load_run(tmp_path, "lin")
    np.testing.assert_allclose(back.oof["emotion"], saved.oof["emotion"].astype(np.float32))
    assert back.classes("emotion") == ["a", "b"] and back.extra["test_by_fold/emotion"].shape == (2, 2, 2)
    with pytest.raises(StoreError, match="no run 'nope'.*stored runs: lin"):
        load_run(tmp_path, "nope")
