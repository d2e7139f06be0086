"""Vision extraction (extract/vision.py): tiny CLIP checkpoints on generated face-frame folders."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.extract.cases import cli, errors_of


def _frames(root: Path) -> dict[str, int]:
    """Generated face-frame folders: plain, nested (OpenFace style), empty and one with a corrupt frame."""
    from PIL import Image

    rng = np.random.default_rng(0)
    layout = {"s1": ("", 3), "s2": ("s2_aligned", 5), "corrupt": ("", 2)}
    for name, (sub, count) in layout.items():
        folder = root / name / sub
        folder.mkdir(parents=True)
        for i in range(1, count + 1):
            pixels = rng.integers(0, 255, size=(48, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"frame_det_00_{i:06d}.png")
    (root / "corrupt" / "frame_det_00_000003.png").write_bytes(b"broken")
    (root / "no_frames").mkdir()
    return {name: count for name, (_, count) in layout.items()}


@pytest.mark.parametrize(("kind", "dim", "embedding"), [("clip-vision", 32, "pooler_output"), ("clip", 16, None)])
def test_vision_clip_on_generated_frames(
    tmp_path: Path, tiny: Callable[..., Path], kind: str, dim: int, embedding: str | None
) -> None:
    counts = _frames(tmp_path / "faces")
    ckpt = tiny(kind, layers=2)
    for level in ("UTT", "FRA"):
        out = tmp_path / "features" / f"tiny-{kind}-{level}"
        result = cli("-m", "vision", "--model", ckpt, "-i", tmp_path / "faces", "-o", out, "-b", 4)
        assert result.exit_code == 2, result.output
        errors = errors_of(out)
        assert set(errors) == {"corrupt", "no_frames"}
        assert errors["no_frames"].startswith("no frames") and "unreadable frame" in errors["corrupt"]
    fra = np.load(tmp_path / "features" / f"tiny-{kind}-FRA" / "s2.npy")
    assert fra.shape == (counts["s2"], dim) and fra.dtype == np.float32
    utt = np.load(tmp_path / "features" / f"tiny-{kind}-UTT" / "s2.npy")
    np.testing.assert_allclose(utt, fra.mean(axis=0), atol=1e-5)
    manifest = json.loads((tmp_path / "features" / f"tiny-{kind}-UTT" / "manifest.json").read_text())
    assert manifest["extractor"]["embedding"] == (embedding or "get_image_features")
