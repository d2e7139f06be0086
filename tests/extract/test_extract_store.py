"""The output folder (extract/_store.py): atomic writes, the manifest a resume must agree with, errors.csv."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from mer_ensemble.errors import ExtractError
from mer_ensemble.extract._store import check_manifest, read_manifest, save_npy_atomic, write_errors, write_manifest


def test_npy_and_manifest_are_written_whole_and_read_back(tmp_path: Path) -> None:
    save_npy_atomic(tmp_path / "a.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.arange(6).reshape(2, 3))
    assert read_manifest(tmp_path) is None
    write_manifest(tmp_path, {"modality": "text", "settings": {"layers": [-1]}, "note": "’"})
    assert read_manifest(tmp_path) == {"modality": "text", "settings": {"layers": [-1]}, "note": "’"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "manifest.json"], "no temporary file left"
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(ExtractError, match="unreadable manifest .*--overwrite"):
        read_manifest(tmp_path)


def test_a_resume_with_another_setup_is_refused(tmp_path: Path) -> None:
    head = {"modality": "audio", "level": "utt", "checkpoint": {"config_sha256": "abc", "path": "/a"},
            "settings": {"layers": [-4, -3, -2, -1]}}
    check_manifest(tmp_path, None, head)  # a new folder
    check_manifest(tmp_path, {**head, "checkpoint": {"config_sha256": "abc", "path": "/moved"}}, head)
    with pytest.raises(ExtractError, match="another settings .*--overwrite"):
        check_manifest(tmp_path, {**head, "settings": {"layers": [-1]}}, head)
    with pytest.raises(ExtractError, match="another checkpoint"):
        check_manifest(tmp_path, {**head, "checkpoint": {"config_sha256": "def"}}, head)


def test_errors_csv_lists_failures_and_goes_when_nothing_failed(tmp_path: Path) -> None:
    path = write_errors(tmp_path, [("a", "a.wav", "empty audio (0 samples)"), ("b", "b,c.wav", "unreadable")])
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [{"name": "a", "source": "a.wav", "error": "empty audio (0 samples)"},
                    {"name": "b", "source": "b,c.wav", "error": "unreadable"}]
    assert write_errors(tmp_path, []) is None and not path.exists()
