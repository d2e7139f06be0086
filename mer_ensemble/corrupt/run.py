"""A ``corrupt`` run: the items of a folder, the checks on the options and the output folder, one
generator per item, the noise pools, and the manifest recording what was done to each item."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.corrupt.audio import AUDIO_EXTENSIONS, corrupt_audio
from mer_ensemble.corrupt.images import IMAGE_EXTENSIONS, corrupt_images
from mer_ensemble.corrupt.video import corrupt_video
from mer_ensemble.errors import DataError

__all__ = ["MANIFEST", "CorruptRecord", "CorruptReport", "corrupt_media"]

MANIFEST = "corrupt-manifest"
SNR_DRAWS = ("integers", "uniform")
BLUR_METHODS = ("pyramid", "resize")


@dataclass
class CorruptRecord:
    """What was done to one item (a row of the manifest)."""

    file: str
    kind: str  # audio, image or frames
    noise_source: str = ""
    noise_offset: int = 0
    snr_db: float | None = None
    gain: float | None = None
    blur_factor: int | None = None
    frames: int | None = None
    seed: int = 0
    snr_draw: str = "integers"
    blur_method: str = "pyramid"


@dataclass
class CorruptReport:
    """A finished run: the output folder, one record per item, the manifest CSV."""

    out: Path
    records: list[CorruptRecord]
    manifest: Path

    def counts(self) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for r in self.records:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        return kinds


def _rng(seed: int, name: str) -> np.random.Generator:
    """A generator for one item: the same seed and name always draw the same numbers."""
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def _items(folder: Path) -> list[tuple[str, Path]]:
    """``(kind, path)`` for every audio file, image, frame folder and video directly in ``folder``."""
    from mer_ensemble.media.video import VIDEO_EXTENSIONS

    items = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.name.startswith(MANIFEST):
            continue
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS:
            items.append(("audio", p))
        elif p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            items.append(("image", p))
        elif p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS:
            items.append(("video", p))
        elif p.is_dir() and any(q.suffix.lower() in IMAGE_EXTENSIONS for q in p.iterdir()):
            items.append(("frames", p))
    return items


def _check_out(inputs: Path, out: Path, noise_dir: Path | None, overwrite: bool) -> None:
    src, dst = inputs.resolve(), out.resolve()
    if dst == src or src in dst.parents:
        raise DataError(f"--out {out} is the input folder or inside it; noisy copies never overwrite the inputs")
    if noise_dir is not None and dst == noise_dir.resolve():
        raise DataError(f"--out {out} is the noise folder; choose another folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DataError(f"--out {out} is not empty; choose a new folder or pass --overwrite")


def _check_options(snr_range: tuple[float, float], blur_factors: Sequence[int], snr_draw: str,
                   blur_method: str) -> None:
    lo, hi = snr_range
    if not lo <= hi:
        raise DataError(f"--snr-min {lo} is above --snr-max {hi}")
    if snr_draw not in SNR_DRAWS:
        raise DataError(f"--snr-draw {snr_draw!r}: expected one of {', '.join(SNR_DRAWS)}")
    if snr_draw == "integers" and (lo != int(lo) or hi != int(hi)):
        raise DataError(f"--snr-min {lo} / --snr-max {hi}: integer SNRs need whole-number bounds "
                        "(or pass --snr-draw uniform)")
    if blur_method not in BLUR_METHODS:
        raise DataError(f"--blur-method {blur_method!r}: expected one of {', '.join(BLUR_METHODS)}")
    if not blur_factors or any(int(f) < 1 for f in blur_factors):
        raise DataError(f"--blur {list(blur_factors)}: factors must be integers >= 1")
    if blur_method == "pyramid" and any(int(f) & (int(f) - 1) for f in blur_factors):
        raise DataError(f"--blur {list(blur_factors)}: pyramid blur (pyrDown/pyrUp) needs powers of two "
                        "such as 1,2,4 (or pass --blur-method resize)")


def corrupt_media(
    inputs: str | Path,
    out: str | Path,
    *,
    noise_dir: str | Path | None = None,
    snr_range: tuple[float, float] = (5.0, 10.0),
    blur_factors: Sequence[int] = (1, 2, 4),
    snr_draw: str = "integers",
    blur_method: str = "pyramid",
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> CorruptReport:
    """Write a noisy copy of every audio file, image, frame folder and video of ``inputs`` to ``out``."""
    from mer_ensemble.progress import progress_bar

    inputs, out = Path(inputs), Path(out)
    if not inputs.is_dir():
        raise DataError(f"--input {inputs} is not a folder")
    _check_options(snr_range, blur_factors, snr_draw, blur_method)
    noise_path = Path(noise_dir) if noise_dir is not None else None
    _check_out(inputs, out, noise_path, overwrite)
    items = _items(inputs)
    if not items:
        raise DataError(f"{inputs}: no audio ({', '.join(AUDIO_EXTENSIONS)}), image, frame folder or video found")
    pools = _noise_pools(inputs, items, noise_path)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"snr_range": snr_range, "snr_draw": snr_draw, "blur_factors": blur_factors,
                "blur_method": blur_method, "seed": seed, "noise_dir": noise_path}
    records = []
    with progress_bar(len(items), "corrupt", enabled=None if progress else False) as advance:
        for kind, path in items:
            rng = _rng(seed, path.name)
            if kind == "audio":
                fields = corrupt_audio(path, out, pools["audio"], rng, settings)
            elif kind == "video":
                fields = corrupt_video(path, out, pools["video"], rng, settings)
            else:
                fields = corrupt_images(kind, path, out, rng, settings)
            records.append(_record(path, kind, settings, **fields))
            advance(1)
    manifest = _write_manifest(out, records)
    return CorruptReport(out, records, manifest)


def _noise_pools(inputs: Path, items: list[tuple[str, Path]], noise_dir: Path | None) -> dict[str, list[Path]]:
    """The noise files of audio items and of videos: ``noise_dir``'s audio, else the other items of that kind."""
    if noise_dir is not None:
        if not noise_dir.is_dir():
            raise DataError(f"--noise-dir {noise_dir} is not a folder")
        pool = sorted(p for p in noise_dir.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        if any(kind in ("audio", "video") for kind, _ in items) and not pool:
            raise DataError(f"--noise-dir {noise_dir}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
        return {"audio": pool, "video": pool}
    pools = {kind: [p for k, p in items if k == kind] for kind in ("audio", "video")}
    for kind, pool in pools.items():
        if len(pool) == 1:
            what = "audio file has no other utterance" if kind == "audio" else "video has no other video's speech"
            raise DataError(f"{inputs}: one {what} to mix in; pass --noise-dir")
    return pools


def _record(path: Path, kind: str, settings: dict[str, Any], **fields: Any) -> CorruptRecord:
    return CorruptRecord(path.name, kind, seed=settings["seed"], snr_draw=settings["snr_draw"],
                         blur_method=settings["blur_method"], **fields)


def _write_manifest(out: Path, records: list[CorruptRecord]) -> Path:
    import pandas as pd

    from mer_ensemble.io import atomic_write_json, atomic_write_text

    rows = [asdict(r) for r in records]
    path = out / f"{MANIFEST}.csv"
    atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))
    atomic_write_json(out / f"{MANIFEST}.json", rows)
    return path
