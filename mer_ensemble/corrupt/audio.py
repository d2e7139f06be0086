"""Audio made noisy as MER-NOISE did: speech mixed with other speech (or ``noise_dir``'s files) at an
SNR drawn per item, scaled down as a whole where the mix would clip."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.errors import DataError
from mer_ensemble.io import atomic_write_bytes

__all__ = ["AUDIO_EXTENSIONS", "corrupt_audio", "draw_snr", "mix_at_snr", "mix_noise", "resample"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


def _mono(wave: np.ndarray) -> np.ndarray:
    return wave.mean(axis=1) if wave.ndim == 2 else wave


def resample(wave: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
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


def draw_snr(rng: np.random.Generator, snr_range: tuple[float, float], draw: str) -> float:
    """An SNR in dB: an integer of ``lo..hi`` (``integers``) or a real number in ``[lo, hi]`` (``uniform``)."""
    lo, hi = snr_range
    if draw == "integers":
        return float(rng.integers(int(lo), int(hi) + 1))
    return float(rng.uniform(lo, hi))


def _read(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        wave, rate = sf.read(str(path), dtype="float64", always_2d=False)
    except RuntimeError as exc:  # soundfile's LibsndfileError is a RuntimeError
        raise DataError(f"{path}: unreadable audio ({str(exc).strip()})") from None
    return wave, int(rate)


def _noise_wave(source: Path, rate: int) -> np.ndarray:
    """Mono noise samples at ``rate`` from an audio file or a video's audio track."""
    if source.suffix.lower() in AUDIO_EXTENSIONS:
        noise, noise_rate = _read(source)
        return resample(_mono(noise), noise_rate, rate)
    from mer_ensemble.media.video import read_audio_track

    return read_audio_track(source, rate).astype(np.float64)


def mix_noise(speech: np.ndarray, rate: int, path: Path, pool: list[Path], rng: np.random.Generator,
              settings: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """``speech`` mixed with a noise drawn from ``pool``; returns the mix and the record fields."""
    candidates = [p for p in pool if p != path]
    source = candidates[int(rng.integers(0, len(candidates)))]
    segment, offset = _noise_segment(_noise_wave(source, rate), len(speech), rng)
    snr = draw_snr(rng, settings["snr_range"], settings["snr_draw"])
    mix, gain = mix_at_snr(speech, segment, snr)
    noise_dir = settings["noise_dir"]
    shown = str(source.relative_to(noise_dir)) if noise_dir is not None else source.name
    return mix, {"noise_source": shown, "noise_offset": offset, "snr_db": round(snr, 4), "gain": round(gain, 6)}


def corrupt_audio(path: Path, out: Path, pool: list[Path], rng: np.random.Generator,
                  settings: dict[str, Any]) -> dict[str, Any]:
    """Write ``out/<file>``: the audio file mixed with a noise of ``pool``; returns the record fields."""
    import soundfile as sf

    speech, rate = _read(path)
    mix, fields = mix_noise(speech, rate, path, pool, rng, settings)
    info = sf.info(str(path))
    buffer = io.BytesIO()
    sf.write(buffer, mix, rate, subtype=info.subtype, format=info.format)
    atomic_write_bytes(out / path.name, buffer.getvalue())
    return fields
