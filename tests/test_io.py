"""Atomic writes: the target appears whole or not at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mer_ensemble.errors import StoreError
from mer_ensemble.io import atomic_save_npz, atomic_write_json, atomic_write_text, read_npy, read_npz


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


@pytest.mark.parametrize("content", [b"", b"\x93NUMPY", np.random.default_rng(1).bytes(256),
                                     b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94."])
def test_readers_name_the_file_and_never_advise_unpickling(tmp_path: Path, content: bytes):
    path = tmp_path / "x.npy"
    path.write_bytes(content)
    for reader in (read_npy, read_npz):
        with pytest.raises(StoreError, match=str(path)) as err:
            reader(path, StoreError)
        assert "pickle" not in str(err.value) and "\n" not in str(err.value)


def test_an_os_error_while_writing_names_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import errno
    import os

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left") as err:
        atomic_write_text(tmp_path / "x.json", "{}")
    assert err.value.filename == str(tmp_path / "x.json") and not list(tmp_path.iterdir())
