"""Noisy copies of raw media, made the way MER2024 built the MER-NOISE test set
(MERTools ``MER2024/main-noise.py``).

* Audio (``.wav``, ``.flac``, ``.ogg``): mixed with speech or noise at an SNR drawn from the
  integers ``snr_min..snr_max`` dB (5..10 by default, the organisers' draw; ``snr_draw=
  "uniform"`` draws a real number instead). The noise is a random file of ``noise_dir``, or,
  by default, another utterance of the same set (the organisers mixed in other speech). It is
  cut at a random offset (looped when shorter), resampled to the utterance's rate and scaled so
  that ``10·log10(P_speech / P_noise) = snr_db``; a mix that would clip is scaled down as a
  whole (``gain`` < 1, the SNR is unchanged).
* Images (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``) and frame folders (a sub-folder of
  images: one clip's face frames): blurred by a factor drawn from ``blur_factors``
  (1, 2 or 4): ``cv2.pyrDown`` log2(factor) times, then ``cv2.pyrUp`` back to the original
  size, as the organisers did (``blur_method="resize"``: a bilinear down- and up-sampling
  instead; factor 1 is an exact copy). A frame folder gets one factor for all its frames.
* Videos (``.mp4``, ``.avi``, ``.mkv``, ...; decoded with PyAV): the audio track is mixed
  as above (the noise: another video's audio track, or ``noise_dir``), and every frame is
  blurred with one factor for the clip; the copy keeps the container, frame rate, frame
  count, timestamps, sample rate and channels (re-encoded: H.264 / AAC, MPEG-4 / PCM in AVI,
  VP8 / Opus in WebM).

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

__all__ = ["AUDIO_EXTENSIONS", "IMAGE_EXTENSIONS", "CorruptReport", "blur", "blur_array", "corrupt_media", "draw_snr",
           "mix_at_snr"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
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


def blur_array(rgb: np.ndarray, factor: int, method: str = "pyramid") -> np.ndarray:
    """``(H, W, C)`` uint8 blurred by ``factor``, same shape out (factor 1: a copy).

    ``pyramid`` (the organisers'): ``cv2.pyrDown`` log2(factor) times, then ``cv2.pyrUp`` back
    through the same sizes (factor must be a power of two); ``resize``: bilinear down-sampling
    by the factor and back.
    """
    import cv2

    if factor == 1:
        return rgb.copy()
    h, w = rgb.shape[:2]
    if method == "resize":
        small = cv2.resize(rgb, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    sizes, out = [], rgb
    for _ in range(int(factor).bit_length() - 1):
        sizes.append((out.shape[1], out.shape[0]))
        out = cv2.pyrDown(out)
    for size in reversed(sizes):
        out = cv2.pyrUp(out, dstsize=size)
    return out


def blur(image: Any, factor: int, method: str = "pyramid") -> Any:
    """A PIL image blurred by ``factor`` (:func:`blur_array`), same size and mode."""
    from PIL import Image

    if factor == 1:
        return image.copy()
    if method == "resize":
        w, h = image.size
        small = image.resize((max(1, w // factor), max(1, h // factor)), Image.BILINEAR)
        return small.resize((w, h), Image.BILINEAR)
    return Image.fromarray(blur_array(np.asarray(image), factor, method))


def draw_snr(rng: np.random.Generator, snr_range: tuple[float, float], draw: str) -> float:
    """An SNR in dB: an integer of ``lo..hi`` (``integers``) or a real number in ``[lo, hi]`` (``uniform``)."""
    lo, hi = snr_range
    if draw == "integers":
        return float(rng.integers(int(lo), int(hi) + 1))
    return float(rng.uniform(lo, hi))


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
                records.append(_corrupt_audio(path, out, pools["audio"], rng, settings))
            elif kind == "video":
                records.append(_corrupt_video(path, out, pools["video"], rng, settings))
            else:
                records.append(_corrupt_images(kind, path, out, rng, settings))
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
        return _resample(_mono(noise), noise_rate, rate)
    from mer_ensemble.media.video import read_audio_track

    return read_audio_track(source, rate).astype(np.float64)


def _mix(speech: np.ndarray, rate: int, path: Path, pool: list[Path], rng: np.random.Generator,
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


def _record(path: Path, kind: str, settings: dict[str, Any], **fields: Any) -> CorruptRecord:
    return CorruptRecord(path.name, kind, seed=settings["seed"], snr_draw=settings["snr_draw"],
                         blur_method=settings["blur_method"], **fields)


def _corrupt_audio(path: Path, out: Path, pool: list[Path], rng: np.random.Generator,
                   settings: dict[str, Any]) -> CorruptRecord:
    import soundfile as sf

    speech, rate = _read(path)
    mix, fields = _mix(speech, rate, path, pool, rng, settings)
    info = sf.info(str(path))
    buffer = io.BytesIO()
    sf.write(buffer, mix, rate, subtype=info.subtype, format=info.format)
    atomic_write_bytes(out / path.name, buffer.getvalue())
    return _record(path, "audio", settings, **fields)


def _corrupt_images(kind: str, path: Path, out: Path, rng: np.random.Generator,
                    settings: dict[str, Any]) -> CorruptRecord:
    from PIL import Image, UnidentifiedImageError

    factors = settings["blur_factors"]
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
                blurred = blur(image, factor, settings["blur_method"])
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{frame}: unreadable image ({str(exc).strip()})") from None
        buffer = io.BytesIO()
        blurred.save(buffer, format=image.format or frame.suffix.lstrip(".").upper().replace("JPG", "JPEG"))
        atomic_write_bytes(target / frame.name, buffer.getvalue())
    return _record(path, kind, settings, blur_factor=factor, frames=len(frames))


#: codecs of the noisy copy per container: (video, audio)
_VIDEO_CODECS = {".mp4": ("libx264", "aac"), ".mov": ("libx264", "aac"), ".m4v": ("libx264", "aac"),
                 ".mkv": ("libx264", "aac"), ".avi": ("mpeg4", "pcm_s16le"), ".webm": ("libvpx", "libopus")}


def _corrupt_video(path: Path, out: Path, pool: list[Path], rng: np.random.Generator,
                   settings: dict[str, Any]) -> CorruptRecord:
    """Mix the audio track and blur every frame of one video (one blur factor per clip)."""
    import os

    import av

    from mer_ensemble.media.video import MediaError

    factors = settings["blur_factors"]
    factor = int(factors[int(rng.integers(0, len(factors)))])
    tmp = out / f".{path.stem}.{os.getpid()}.tmp{path.suffix}"
    try:
        audio, rate, layout = _audio_track(path)
        fields: dict[str, Any] = {}
        if audio is not None:
            mixed, fields = _mix(audio.T, rate, path, pool, rng, settings)
            audio = mixed.T.astype(np.float32)
        frames = _write_video(path, tmp, audio, rate, layout, factor, settings["blur_method"])
        os.replace(tmp, out / path.name)
    except (av.error.FFmpegError, MediaError) as exc:
        raise DataError(f"{path}: cannot be corrupted as a video ({str(exc).strip().splitlines()[0]})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return _record(path, "video", settings, blur_factor=factor, frames=frames, **fields)


def _audio_track(path: Path) -> tuple[np.ndarray | None, int, str]:
    """The first audio stream as float32 ``(channels, n)`` at its own rate, its rate and layout."""
    import av

    from mer_ensemble.media.video import MediaError

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot be opened ({str(exc).strip()})") from None
    with container:
        if not container.streams.audio:
            return None, 0, ""
        stream = container.streams.audio[0]
        rate, channels = int(stream.rate), int(stream.layout.nb_channels or 1)
        # a named layout (an unordered "1 channels" from PCM in Matroska is not one the encoders accept)
        layout = {1: "mono", 2: "stereo"}.get(channels) or av.AudioLayout(channels).name
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks = [out.to_ndarray() for frame in container.decode(stream) for out in resampler.resample(frame)]
        chunks += [out.to_ndarray() for out in resampler.resample(None)]
    audio = np.concatenate(chunks, axis=1).astype(np.float64) if chunks else None
    if audio is None or audio.shape[1] == 0:
        return None, 0, ""  # an empty track: nothing to mix, the copy has none either
    return audio, rate, layout


def _write_video(source: Path, target: Path, audio: np.ndarray | None, rate: int, layout: str, factor: int,
                 method: str) -> int:
    """Re-encode ``source`` into ``target`` with blurred frames and ``audio`` ``(channels, n)``; returns frames."""
    from fractions import Fraction

    import av

    vcodec, acodec = _VIDEO_CODECS.get(source.suffix.lower(), ("libx264", "aac"))
    frames = 0
    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        vin = src.streams.video[0] if src.streams.video else None
        vout = None
        if vin is not None:
            vout = dst.add_stream(vcodec, rate=vin.average_rate or vin.guessed_rate or 25)
            vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
            vout.time_base = vin.time_base
        aout = None
        if audio is not None:
            out_rate = 48000 if acodec == "libopus" else rate
            aout = dst.add_stream(acodec, rate=out_rate)
            aout.layout = layout
        if vin is not None:
            for frame in src.decode(vin):
                rgb = blur_array(frame.to_ndarray(format="rgb24"), factor, method)
                new = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                new.pts, new.time_base = frame.pts, frame.time_base
                for packet in vout.encode(new):
                    dst.mux(packet)
                frames += 1
            for packet in vout.encode(None):
                dst.mux(packet)
        if aout is not None:
            samples = audio if aout.rate == rate else np.stack([_resample(c, rate, aout.rate) for c in audio])
            size = aout.codec_context.frame_size or 1024
            planar = np.ascontiguousarray(samples, dtype=np.float32)
            for offset in range(0, planar.shape[1], size):
                chunk = av.AudioFrame.from_ndarray(planar[:, offset : offset + size], format="fltp", layout=layout)
                chunk.sample_rate, chunk.pts, chunk.time_base = aout.rate, offset, Fraction(1, aout.rate)
                for packet in aout.encode(chunk):
                    dst.mux(packet)
            for packet in aout.encode(None):
                dst.mux(packet)
    return frames


def _write_manifest(out: Path, records: list[CorruptRecord]) -> Path:
    import pandas as pd

    from mer_ensemble.io import atomic_write_json, atomic_write_text

    rows = [asdict(r) for r in records]
    path = out / f"{MANIFEST}.csv"
    atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))
    atomic_write_json(out / f"{MANIFEST}.json", rows)
    return path
