"""Small test videos made from real speech (the shared EmoDB wavs) and a real face photo
(``skimage.data.astronaut()`` drifting over a texture photo); tests skip without them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_DATA

EMODB = SHARED_DATA / "emodb"
needs_emodb = pytest.mark.skipif(not (EMODB / "wav").is_dir(), reason=f"EmoDB wavs not found under {SHARED_DATA}")

pytest.importorskip("av")
pytest.importorskip("cv2")
pytest.importorskip("skimage")


def emodb_wav(name: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    wave, rate = sf.read(str(EMODB / "wav" / f"{name}.wav"), dtype="float32")
    return wave, rate


def emodb_names(count: int, offset: int = 0) -> list[str]:
    import pandas as pd

    labels = pd.read_csv(EMODB / "label-train.csv")
    return list(labels["name"].iloc[offset : offset + count])


def make_videos(folder: Path, names: list[str], *, faceless_every: int = 5, ext: str = ".mp4") -> dict[str, np.ndarray]:
    """One video per EmoDB name (every ``faceless_every``-th without the face); returns the true boxes."""
    from mer_ensemble.media.testing import make_video

    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i, name in enumerate(names):
        wave, rate = emodb_wav(name)
        textures = ("gravel", "grass", "brick", "coffee")
        truth[name] = make_video(folder / f"{name}{ext}", wave, rate, face=(i % faceless_every != faceless_every - 1),
                                 seed=i, texture=textures[i % len(textures)])
    return truth
