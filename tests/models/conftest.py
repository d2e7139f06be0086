"""Fixtures of the model tests: tiny random checkpoints for the families that fine-tune one."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random BERT (2 layers), HuBERT and Whisper (2 layers each) saved with their preprocessors."""
    pytest.importorskip("transformers")
    from mer_ensemble.extract.testing import save_tiny_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")
    return {kind: save_tiny_checkpoint(kind, root / kind, layers=2) for kind in ("bert", "hubert", "whisper")}
