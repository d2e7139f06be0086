"""Atomic writes: the target appears whole or not at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mer_ensemble.io import atomic_save_npz, atomic_write_json, atomic_write_text


def test_atomic_writes_round_trip_and_leave_no_temporary_file(tmp_path: Path):
    atomic_write_json(tmp_path / "a" / "x.json", {"v": np.float32(0.5), "p": Path("p")})
    assert (tmp_path / "a" / "x.json").read_text() == '{\n "v": 0.5,\n "p": "p"\n}\n'
    atomic_save_npz(tmp_path / "a" / "y.npz", arr=np.arange(3))
    with np.load(tmp_path / "a" / "y.npz") as npz:
        assert npz["arr"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["x.json", "y.npz"]


def test_a_failed_write_keeps_the_previous_file(tmp_path: Path):
    target = atomic_write_text(tmp_path / "x.json", "old")
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.json"]
