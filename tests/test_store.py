"""The prediction store: one record per run, complete or absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mer_ensemble.errors import StoreError
from mer_ensemble.store import RunRecord, list_run_keys, load_run, require_runs, save_run


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


def test_commands_that_need_runs_say_where_none_are_stored(tmp_path: Path):
    with pytest.raises(StoreError, match=f"no stored runs in {tmp_path / 'store'}; run mer-ensemble train-all"):
        require_runs(tmp_path)
    save_run(tmp_path, _record("lin"))
    assert require_runs(tmp_path) == ["lin"]


def _npz_with(path: Path, **changes: np.ndarray) -> None:
    arrays = dict(np.load(path))
    arrays.update(changes)
    np.savez(path, **arrays)


@pytest.mark.parametrize("breaker, message", [
    (lambda s: (s / "lin.npz").write_bytes(np.random.default_rng(0).bytes(300)), r"lin.npz: cannot be read: not a"),
    (lambda s: (s / "lin.npz").write_bytes((s / "lin.npz").read_bytes()[:200]), r"lin.npz: cannot be read: not a"),
    (lambda s: (s / "lin.npz").write_bytes(b""), r"lin.npz: cannot be read: the file is empty"),
    (lambda s: (s / "lin.json").write_text((s / "lin.json").read_text()[:20]), r"lin.json: not valid JSON"),
    (lambda s: (s / "lin.json").write_text(""), r"lin.json: the file is empty"),
    (lambda s: (s / "lin.json").write_text('{"key": "lin"}'), r"lin.json: manifest lacks \['targets', 'classes'\]"),
    (lambda s: _npz_with(s / "lin.npz", **{"oof/emotion": np.full((4, 2), np.nan)}),
     r"lin.npz: oof/emotion holds 8 NaN/inf"),
    (lambda s: _npz_with(s / "lin.npz", **{"pool/emotion": np.zeros((3, 5))}),
     r"lin.npz: pool/emotion has shape \(3, 5\), expected \(3, 2\)"),
    (lambda s: _npz_with(s / "lin.npz", fold=np.zeros(2)), r"lin.npz: fold has shape \(2,\)"),
])
def test_a_damaged_record_is_one_error_naming_run_and_file(tmp_path: Path, breaker, message: str):
    save_run(tmp_path, _record("lin"))
    breaker(tmp_path / "store")
    with pytest.raises(StoreError, match=r"^run lin: .*" + message) as err:
        load_run(tmp_path, "lin")
    assert "\n" not in str(err.value) and "pickle" not in str(err.value)
