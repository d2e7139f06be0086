"""Videos made noisy as MER-NOISE did, decoded and re-encoded with PyAV: the audio track mixed
(:mod:`~mer_ensemble.corrupt.audio`), every frame blurred with one factor per clip
(:mod:`~mer_ensemble.corrupt.images`); container, frame rate, timestamps and audio layout kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.corrupt.audio import mix_noise, resample
from mer_ensemble.corrupt.images import blur_array, draw_blur_factor
from mer_ensemble.errors import DataError

__all__ = ["corrupt_video"]


#: codecs of the noisy copy per container: (video, audio)
_VIDEO_CODECS = {".mp4": ("libx264", "aac"), ".mov": ("libx264", "aac"), ".m4v": ("libx264", "aac"),
                 ".mkv": ("libx264", "aac"), ".avi": ("mpeg4", "pcm_s16le"), ".webm": ("libvpx", "libopus")}


def corrupt_video(path: Path, out: Path, pool: list[Path], rng: np.random.Generator,
                  settings: dict[str, Any]) -> dict[str, Any]:
    """Mix the audio track and blur every frame of one video (one blur factor per clip); returns
    the record fields."""
    import os

    import av

    from mer_ensemble.media.video import MediaError

    factor = draw_blur_factor(rng, settings["blur_factors"])
    tmp = out / f".{path.stem}.{os.getpid()}.tmp{path.suffix}"
    try:
        audio, rate, layout = _audio_track(path)
        fields: dict[str, Any] = {}
        if audio is not None:
            mixed, fields = mix_noise(audio.T, rate, path, pool, rng, settings)
            audio = mixed.T.astype(np.float32)
        frames = _write_video(path, tmp, audio, rate, layout, factor, settings["blur_method"])
        os.replace(tmp, out / path.name)
    except (av.error.FFmpegError, MediaError) as exc:
        raise DataError(f"{path}: cannot be corrupted as a video ({str(exc).strip().splitlines()[0]})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return {"blur_factor": factor, "frames": frames, **fields}


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
    import av

    from mer_ensemble.media.video import encode_audio, encode_video

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
            blurred = ((blur_array(frame.to_ndarray(format="rgb24"), factor, method), frame.pts, frame.time_base)
                       for frame in src.decode(vin))
            frames = encode_video(dst, vout, blurred)
        if aout is not None:
            samples = audio if aout.rate == rate else np.stack([resample(c, rate, aout.rate) for c in audio])
            encode_audio(dst, aout, np.ascontiguousarray(samples, dtype=np.float32), aout.rate, layout=layout)
    return frames
