"""Decoding a video with PyAV (FFmpeg inside its wheel; no system ffmpeg): the audio track as
16 kHz mono float32, and the video frames a caller asks for as RGB arrays, in one pass.

>>> reader = VideoReader("clip.mp4")                                   # doctest: +SKIP
>>> for index, rgb in reader.frames(lambda i, t: i % 10 == 0):         # doctest: +SKIP
...     ...                                                            # rgb: (H, W, 3) uint8
>>> reader.audio.shape, reader.n_frames, reader.duration               # doctest: +SKIP
((80000,), 125, 5.0)

``frames`` demuxes the audio and the video stream together, so the audio is complete once the
frames are exhausted. Frame indices count the decoded video frames from 0 in presentation order.

:func:`encode_video` and :func:`encode_audio` write the streams of an output container (noisy
copies, test videos).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.errors import DataError

__all__ = ["VIDEO_EXTENSIONS", "MediaError", "VideoReader", "encode_audio", "encode_video", "every_n_frames",
           "every_seconds", "read_audio_track"]

VIDEO_EXTENSIONS = (
    ".mp4", ".avi", ".mkv", ".webm", ".mov", ".flv", ".m4v", ".mpg", ".mpeg", ".wmv", ".ts", ".3gp", ".ogv",
)


class MediaError(DataError):
    """A media file cannot be opened or decoded (its reason in one line)."""


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text


class VideoReader:
    """One video file, decoded lazily by :meth:`frames`.

    After :meth:`frames` is exhausted: ``audio`` ``(n,)`` float32 at ``rate`` Hz (None when
    the file has no audio stream), ``n_frames`` decoded video frames, ``duration`` seconds
    (the container's, else the longer of the streams), ``has_video``.
    """

    def __init__(self, path: str | Path, *, rate: int = 16000) -> None:
        self.path = Path(path)
        self.rate = int(rate)
        self.audio: np.ndarray | None = None
        self.n_frames = 0
        self.duration = 0.0
        self.has_video = False
        self.has_audio = False
        self.fps = 0.0

    def frames(self, want: Callable[[int, float], bool]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, rgb)`` for every decoded frame where ``want(index, seconds)``; ``rgb``
        is ``(H, W, 3)`` uint8. Raises :class:`MediaError` when the file cannot be decoded."""
        import av

        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
            raise MediaError(f"{self.path}: cannot be opened as a video ({_reason(exc)})") from None
        with container:
            video = container.streams.video[0] if container.streams.video else None
            audio = container.streams.audio[0] if container.streams.audio else None
            self.has_video, self.has_audio = video is not None, audio is not None
            if video is None and audio is None:
                raise MediaError(f"{self.path}: holds no audio or video stream")
            if video is not None:
                video.thread_type = "AUTO"
                rate = video.average_rate or video.guessed_rate
                self.fps = float(rate) if rate else 0.0
            resampler = av.AudioResampler(format="flt", layout="mono", rate=self.rate) if audio is not None else None
            chunks: list[np.ndarray] = []
            last_time = 0.0
            try:
                for packet in container.demux(*[s for s in (video, audio) if s is not None]):
                    for frame in packet.decode():
                        if packet.stream is audio:
                            chunks.extend(_resampled(resampler, frame))
                            continue
                        index = self.n_frames
                        self.n_frames += 1
                        seconds = float(frame.time) if frame.time is not None else index / (self.fps or 25.0)
                        last_time = max(last_time, seconds)
                        if want(index, seconds):
                            yield index, frame.to_ndarray(format="rgb24")
                if resampler is not None:
                    chunks.extend(_resampled(resampler, None))
            except av.error.FFmpegError as exc:
                raise MediaError(
                    f"{self.path}: decoding failed after {self.n_frames} frames ({_reason(exc)})"
                ) from None
            if audio is not None:
                self.audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
            streams = [len(self.audio) / self.rate if self.audio is not None else 0.0]
            if self.n_frames:
                streams.append(last_time + (1.0 / self.fps if self.fps else 0.0))
            declared = container.duration / 1_000_000 if container.duration else 0.0
            self.duration = float(declared or max(streams))


def _resampled(resampler, frame) -> list[np.ndarray]:  # noqa: ANN001 - av objects
    """Mono float32 samples of ``frame`` (None flushes the resampler)."""
    return [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]


def every_seconds(fps: float) -> Callable[[int, float], bool]:
    """A frame chooser that keeps one frame per ``1 / fps`` seconds (the first at or after each
    tick); ``fps <= 0`` keeps every frame."""
    if fps <= 0:
        return lambda index, seconds: True
    step = 1.0 / fps
    state = {"next": 0.0}

    def want(index: int, seconds: float) -> bool:
        if seconds + 1e-6 < state["next"]:
            return False
        while state["next"] <= seconds + 1e-6:
            state["next"] += step
        return True

    return want


def every_n_frames(n: int) -> Callable[[int, float], bool]:
    """A frame chooser that keeps frames ``0, n, 2n, ...`` (``n <= 0``: none)."""
    return (lambda index, seconds: index % n == 0) if n > 0 else (lambda index, seconds: False)


def read_audio_track(path: str | Path, rate: int = 16000) -> np.ndarray:
    """The audio track of a video (or audio) file, ``(n,)`` float32 mono at ``rate`` Hz.

    Raises :class:`MediaError` when the file cannot be decoded or has no audio stream.
    """
    reader = VideoReader(path, rate=rate)
    for _ in reader.frames(lambda index, seconds: False):
        pass
    if reader.audio is None:
        raise MediaError(f"{path}: has no audio stream")
    return reader.audio


def encode_video(container: Any, stream: Any, frames: Iterable[tuple[np.ndarray, int, Fraction]]) -> int:
    """Encode ``(rgb, pts, time_base)`` frames (``rgb``: ``(H, W, 3)`` uint8) into ``stream`` of the
    output ``container``, muxing every packet, then flush the encoder; returns the number of frames."""
    import av

    count = 0
    for rgb, pts, time_base in frames:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        _encode(container, stream, frame)
        count += 1
    _encode(container, stream, None)
    return count


def encode_audio(container: Any, stream: Any, samples: np.ndarray, rate: int, *, layout: str,
                 sample_format: str = "fltp") -> None:
    """Encode float32 ``samples`` ``(channels, n)`` at ``rate`` Hz into ``stream`` of the output
    ``container`` in chunks of the codec's frame size (pts: the sample offset), then flush;
    ``sample_format`` ``fltp`` (planar) or ``flt`` (packed, ``(1, n * channels)``)."""
    import av

    size = stream.codec_context.frame_size or 1024
    for offset in range(0, samples.shape[1], size):
        chunk = av.AudioFrame.from_ndarray(samples[:, offset : offset + size], format=sample_format, layout=layout)
        chunk.sample_rate, chunk.pts, chunk.time_base = rate, offset, Fraction(1, rate)
        _encode(container, stream, chunk)
    _encode(container, stream, None)


def _encode(container: Any, stream: Any, frame: Any) -> None:
    """Encode one frame (None flushes the encoder) and mux its packets."""
    for packet in stream.encode(frame):
        container.mux(packet)
