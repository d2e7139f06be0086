"""Fixtures of the extraction tests: one torch thread, tiny checkpoints, a subset of EmoDB wavs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.extract.cases import EMODB_WAV, SHARED


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One torch thread: tiny models gain nothing from more, and a shared CPU slows them down a lot."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Build (once per module) a tiny random checkpoint of a kind, saved with its preprocessor."""
    pytest.importorskip("transformers")
    from mer_ensemble.extract.testing import save_tiny_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")
    built: dict[tuple[str, int], Path] = {}

    def get(kind: str, layers: int = 4) -> Path:
        if (kind, layers) not in built:
            built[(kind, layers)] = save_tiny_checkpoint(kind, root / f"{kind}-{layers}", layers=layers)
        return built[(kind, layers)]

    return get


@pytest.fixture(scope="module")
def emodb_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 real EmoDB wavs (22.05 kHz, 2 s) linked into a folder, plus bad, empty and long files."""
    if not EMODB_WAV.is_dir():
        pytest.skip(f"EmoDB wav not found under {SHARED}")
    import soundfile as sf

    folder = tmp_path_factory.mktemp("emodb_wav")
    for path in sorted(EMODB_WAV.glob("*.wav"))[:12]:
        os.symlink(path, folder / path.name)
    (folder / "bad.wav").write_bytes(b"this is not audio")
    sf.write(folder / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    rng = np.random.default_rng(0)
    sf.write(folder / "long.flac", (0.1 * rng.standard_normal(7 * 16000)).astype(np.float32), 16000)
    return folder
