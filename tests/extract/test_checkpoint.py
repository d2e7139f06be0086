"""Local checkpoints (extract/_checkpoint.py): a missing folder and a checkpoint of another modality are one line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mer_ensemble.errors import ExtractError
from mer_ensemble.extract import extract_features
from tests.extract.cases import cli, minilm


def test_missing_checkpoint_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    result = cli("-m", "audio", "--model", tmp_path / "nope", "-i", tmp_path / "in", "-o", tmp_path / "o-UTT")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: checkpoint folder not found") and "offline" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_wrong_modality_checkpoint(tmp_path: Path, tiny: Callable[..., Path]) -> None:
    with open(tmp_path / "t.csv", "w", encoding="utf-8") as handle:
        handle.write("name,text\na,hello\n")
    result = cli("-m", "text", "--model", tiny("hubert"), "-i", tmp_path / "t.csv", "-o", tmp_path / "o-UTT")
    assert result.exit_code == 1
    assert "hubert model for audio input, not text" in result.stderr and "--modality audio" in result.stderr
    with pytest.raises(ExtractError, match="not vision"):
        extract_features("vision", minilm(), tmp_path, tmp_path / "v-UTT")
