"""Noisy copies of raw media, made the way MER2024 built the MER-NOISE test set.

* Audio (``.wav``, ``.flac``, ``.ogg``): mixed with speech or noise at an SNR drawn
  uniformly from ``[snr_min, snr_max]`` dB (5–10 dB by default). The noise is a random file
  of ``noise_dir``, or, by default, another utterance of the same set (the organisers mixed
  in other speech). It is cut at a random offset (looped when shorter), resampled to the
  utterance's rate and scaled so that ``10·log10(P_speech / P_noise) = snr_db``; a mix that
  would clip is scaled down as a whole (``gain`` < 1, the SNR is unchanged).
* Images (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``) and frame folders (a sub-folder of
  images: one clip's face frames): blurred by a factor drawn from ``blur_factors``
  (1, 2 or 4): down-sampled by the factor, then up-sampled back to the original size
  (factor 1 is an exact copy). A frame folder gets one factor for all its frames.

Every draw comes from a generator seeded by ``seed`` and the item's name, so a copy is
reproducible and does not depend on which other items are processed. Outputs keep the
input names under ``out``; ``out/corrupt-manifest.csv`` (and ``.json``) records for every
item its kind, noise source, offset, SNR, gain or blur factor and the seed. Inputs are
never written: ``out`` may not be the input folder or lie inside it.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.errors import DataError
from mer_ensemble.io import atomic_write_bytes

__all__ = ["AUDIO_EXTENSIONS", "IMAGE_EXTENSIONS", "CorruptReport", "blur", "corrupt_media", "mix_at_snr"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
MANIFEST = "corrupt-manifest"


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


@dataclass
class CorruptReport:
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


def _mono(wave: np.ndarray) -> np.ndarray:
    return wave.mean(axis=1) if wave.ndim == 2 else wave


def _resample(wave: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return wave
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate_in, rate_out)
    return resample_poly(wave, rate_out // g, rate_in // g).astype(np.float64)


def _noise_segment(noise: np.ndarray, length: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``length`` samples of ``noise`` from a random offset, looped when it is shorter."""
    if len(noise) == 0:
        raise DataError("a noise file is empty")
    offset = int(rng.integers(0, len(noise)))
    reps = int(np.ceil((offset + length) / len(noise)))
    return np.tile(noise, reps)[offset: offset + length], offset


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> tuple[np.ndarray, float]:
    """``speech`` ``(n,)`` or ``(n, channels)`` plus ``noise`` ``(n,)`` scaled to ``snr_db``;
    returns the mix (same shape as ``speech``) and the gain applied to avoid clipping."""
    p_speech = float(np.mean(_mono(speech) ** 2))
    p_noise = float(np.mean(noise**2))
    if p_noise == 0.0:
        raise DataError("the noise segment is silent; choose other noise files")
    scale = np.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))
    scaled = noise * scale
    mix = speech + (scaled[:, None] if speech.ndim == 2 else scaled)
    peak = float(np.max(np.abs(mix))) if mix.size else 0.0
    gain = 1.0 if peak <= 0.999 else 0.999 / peak
    return mix * gain, gain


def blur(image: Any, factor: int) -> Any:
    """A PIL image down-sampled by ``factor`` and up-sampled back to its size (factor 1: a copy)."""
    from PIL import Image

    if factor == 1:
        return image.copy()
    w, h = image.size
    small = image.resize((max(1, w // factor), max(1, h // factor)), Image.BILINEAR)
    return small.resize((w, h), Image.BILINEAR)


def _items(folder: Path) -> list[tuple[str, Path]]:
    """``(kind, path)`` for every audio file, image and frame folder directly in ``folder``."""
    items = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.name.startswith(MANIFEST):
            continue
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS:
            items.append(("audio", p))
        elif p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            items.append(("image", p))
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


def corrupt_media(
    inputs: str | Path,
    out: str | Path,
    *,
    noise_dir: str | Path | None = None,
    snr_range: tuple[float, float] = (5.0, 10.0),
    blur_factors: Sequence[int] = (1, 2, 4),
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> CorruptReport:
    """Write a noisy copy of every audio file, image and frame folder of ``inputs`` to ``out``."""
    import soundfile as sf

    from mer_ensemble.progress import progress_bar

    inputs, out = Path(inputs), Path(out)
    if not inputs.is_dir():
        raise DataError(f"--input {inputs} is not a folder")
    lo, hi = snr_range
    if not lo <= hi:
        raise DataError(f"--snr-min {lo} is above --snr-max {hi}")
    if not blur_factors or any(int(f) < 1 for f in blur_factors):
        raise DataError(f"--blur {list(blur_factors)}: factors must be integers >= 1")
    noise_path = Path(noise_dir) if noise_dir is not None else None
    _check_out(inputs, out, noise_path, overwrite)
    items = _items(inputs)
    if not items:
        raise DataError(f"{inputs}: no audio ({', '.join(AUDIO_EXTENSIONS)}), image or frame folder found")
    audio_items = [p for kind, p in items if kind == "audio"]
    if noise_path is not None:
        if not noise_path.is_dir():
            raise DataError(f"--noise-dir {noise_path} is not a folder")
        noise_pool = sorted(p for p in noise_path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        if audio_items and not noise_pool:
            raise DataError(f"--noise-dir {noise_path}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    else:
        noise_pool = audio_items
        if len(audio_items) == 1:
            raise DataError(f"{inputs}: one audio file has no other utterance to mix in; pass --noise-dir")
    out.mkdir(parents=True, exist_ok=True)
    records = []
    with progress_bar(len(items), "corrupt", enabled=None if progress else False) as advance:
        for kind, path in items:
            rng = _rng(seed, path.name)
            if kind == "audio":
                records.append(_corrupt_audio(sf, path, out, noise_pool, noise_path, snr_range, rng, seed))
            else:
                records.append(_corrupt_images(kind, path, out, blur_factors, rng, seed))
            advance(1)
    manifest = _write_manifest(out, records)
    return CorruptReport(out, records, manifest)


def _read(sf: Any, path: Path) -> tuple[np.ndarray, int]:
    try:
        wave, rate = sf.read(str(path), dtype="float64", always_2d=False)
    except RuntimeError as exc:  # soundfile's LibsndfileError is a RuntimeError
        raise DataError(f"{path}: unreadable audio ({str(exc).strip()})") from None
    return wave, int(rate)


def _corrupt_audio(
    sf: Any, path: Path, out: Path, pool: list[Path], noise_dir: Path | None,
    snr_range: tuple[float, float], rng: np.random.Generator, seed: int,
) -> CorruptRecord:
    speech, rate = _read(sf, path)
    candidates = [p for p in pool if p != path]
    source = candidates[int(rng.integers(0, len(candidates)))]
    noise, noise_rate = _read(sf, source)
    noise = _resample(_mono(noise), noise_rate, rate)
    segment, offset = _noise_segment(noise, len(speech), rng)
    snr = float(rng.uniform(*snr_range))
    mix, gain = mix_at_snr(speech, segment, snr)
    info = sf.info(str(path))
    buffer = io.BytesIO()
    sf.write(buffer, mix, rate, subtype=info.subtype, format=info.format)
    atomic_write_bytes(out / path.name, buffer.getvalue())
    shown = str(source.relative_to(noise_dir)) if noise_dir is not None else source.name
    return CorruptRecord(path.name, "audio", noise_source=shown, noise_offset=offset, snr_db=round(snr, 4),
                         gain=round(gain, 6), seed=seed)


def _corrupt_images(
    kind: str, path: Path, out: Path, factors: Sequence[int], rng: np.random.Generator, seed: int
) -> CorruptRecord:
    from PIL import Image, UnidentifiedImageError

    factor = int(factors[int(rng.integers(0, len(factors)))])
    frames = [path] if kind == "image" else sorted(
        p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    target = out if kind == "image" else out / path.name
    target.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        if factor == 1:  # an exact copy, not a re-encoded one
            atomic_write_bytes(target / frame.name, frame.read_bytes())
            continue
        try:
            with Image.open(frame) as image:
                image.load()
                blurred = blur(image, factor)
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{frame}: unreadable image ({str(exc).strip()})") from None
        buffer = io.BytesIO()
        blurred.save(buffer, format=image.format or frame.suffix.lstrip(".").upper().replace("JPG", "JPEG"))
        atomic_write_bytes(target / frame.name, buffer.getvalue())
    return CorruptRecord(path.name, kind, blur_factor=factor, frames=len(frames), seed=seed)


def _write_manifest(out: Path, records: list[CorruptRecord]) -> Path:
    import pandas as pd

    from mer_ensemble.io import atomic_write_json, atomic_write_text

    rows = [asdict(r) for r in records]
    path = out / f"{MANIFEST}.csv"
    atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))
    atomic_write_json(out / f"{MANIFEST}.json", rows)
    return path
