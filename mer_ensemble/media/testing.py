"""Small real-looking test videos: real speech with a real face photo drifting over a background.

:func:`make_video` writes a video whose audio is a given waveform (e.g. an EmoDB utterance)
and whose frames show a background (a texture photo) with, optionally, a photo patch holding a
face moving across it; it returns the true face box of every frame so that a test or a
benchmark can score the face detector. :func:`astronaut_patch` is the face photo scikit-image
ships (``skimage.data.astronaut()``) with its hand-annotated face box.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["ASTRONAUT_FACE", "astronaut_patch", "background", "make_video", "save_tiny_enhancer"]

#: the face in ``skimage.data.astronaut()`` (512 x 512), hand-annotated: hairline to chin, cheek to cheek
ASTRONAUT_FACE = np.array([178.0, 72.0, 271.0, 177.0])


def astronaut_patch(side: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """The astronaut's head and shoulders ``(side, side, 3)`` uint8 and its face box in the patch."""
    import cv2
    from skimage import data

    top, left, size = 0, 75, 300  # a square around the head, inside the 512 x 512 photo
    crop = data.astronaut()[top : top + size, left : left + size]
    scale = side / size
    patch = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    box = (ASTRONAUT_FACE - np.array([left, top, left, top])) * scale
    return np.ascontiguousarray(patch), box


def background(width: int, height: int, kind: str = "gravel") -> np.ndarray:
    """A real texture photo of scikit-image (``gravel``, ``grass``, ``brick``, ``coffee``...)
    resized to ``(height, width, 3)`` uint8."""
    import cv2
    from skimage import data

    image = np.asarray(getattr(data, kind)())
    image = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
    return np.ascontiguousarray(cv2.resize(image.astype(np.uint8), (width, height), interpolation=cv2.INTER_AREA))


def make_video(
    path: str | Path,
    audio: np.ndarray | None,
    rate: int = 16000,
    *,
    face: bool = True,
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
    seconds: float | None = None,
    texture: str = "gravel",
    patch_side: int = 150,
    seed: int = 0,
    video_codec: str | None = None,
    audio_codec: str | None = None,
) -> np.ndarray:
    """Write a video at ``path`` and return the true face box per frame, ``(n_frames, 4)``
    (``x1, y1, x2, y2``; NaN rows where no face is shown).

    ``audio``: ``(n,)`` float samples at ``rate`` (None: no audio stream); the video lasts
    ``seconds`` (default: as long as the audio). The patch drifts linearly between two random
    places. Codecs by container: ``.mp4`` h264 + aac, ``.mkv`` mpeg4 + pcm_s16le, ``.webm``
    vp8 + opus (audio resampled to 48 kHz), ``.avi`` mpeg4 + pcm_s16le.
    """
    import av

    from mer_ensemble.media.video import encode_audio, encode_video

    path = Path(path)
    width, height = size
    defaults = {".mp4": ("libx264", "aac"), ".mkv": ("mpeg4", "pcm_s16le"), ".webm": ("libvpx", "libopus"),
                ".avi": ("mpeg4", "pcm_s16le")}
    vcodec, acodec = defaults.get(path.suffix.lower(), ("mpeg4", "aac"))
    vcodec, acodec = video_codec or vcodec, audio_codec or acodec
    duration = seconds if seconds is not None else (len(audio) / rate if audio is not None else 2.0)
    n_frames = max(int(round(duration * fps)), 1)
    rng = np.random.default_rng(seed)
    back = background(width, height, texture)
    patch, face_box = astronaut_patch(patch_side)
    start = rng.uniform([0, 0], [width - patch_side, height - patch_side])
    end = rng.uniform([0, 0], [width - patch_side, height - patch_side])
    boxes = np.full((n_frames, 4), np.nan)
    with av.open(str(path), "w") as container:
        vstream = container.add_stream(vcodec, rate=fps)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        astream = None
        if audio is not None:
            if acodec == "libopus" and rate != 48000:  # opus encodes 48 kHz only
                from mer_ensemble.extract.audio import resample

                audio, rate = resample(np.asarray(audio, dtype=np.float32), rate, 48000), 48000
            astream = container.add_stream(acodec, rate=rate)
            astream.layout = "mono"
        encode_video(container, vstream, _drifting_face(back, patch, face_box if face else None, start, end,
                                                          n_frames, fps, boxes))
        if astream is not None:
            pcm = np.clip(np.asarray(audio, dtype=np.float32), -1, 1)[None, :]
            encode_audio(container, astream, pcm, rate, layout="mono", sample_format="flt")
    return boxes


def _drifting_face(back: np.ndarray, patch: np.ndarray, face_box: np.ndarray | None, start: np.ndarray,
                   end: np.ndarray, n_frames: int, fps: int,
                   boxes: np.ndarray) -> Iterator[tuple[np.ndarray, int, Fraction]]:
    """The frames ``(rgb, pts, time_base)`` of :func:`make_video`: ``back`` with ``patch`` moving from ``start``
    to ``end`` (no patch when ``face_box`` is None); each frame's face box goes into ``boxes``."""
    side = patch.shape[0]
    for index in range(n_frames):
        frame = back.copy()
        if face_box is not None:
            x, y = (start + (end - start) * index / max(n_frames - 1, 1)).round().astype(int)
            frame[y : y + side, x : x + side] = patch
            boxes[index] = face_box + np.array([x, y, x, y])
        yield frame, index, Fraction(1, fps)


def save_tiny_enhancer(folder: str | Path, *, output: str = "waveform", gain: float = 0.5, exporter: str = "export",
                       sample_rate: int = 16000, chunk_seconds: float = 1.0) -> Path:
    """A denoise checkpoint folder (``enhancer.json`` + model) whose model scales the waveform by
    ``gain`` (``output="waveform"``), or returns two sources ``(B, 2, T)``, the input times
    ``1 - gain`` and times ``gain`` (``output="sources"``, speech = the loudest). ``exporter``:
    ``jit`` (TorchScript) or ``export`` (``torch.export``, a ``.pt2`` file with a dynamic batch size and length)."""
    import json

    import torch

    class Gain(torch.nn.Module):
        def __init__(self, gain: float, sources: bool) -> None:
            super().__init__()
            self.gain, self.sources = gain, sources

        def forward(self, wave: torch.Tensor) -> torch.Tensor:
            if self.sources:
                return torch.stack([wave * (1 - self.gain), wave * self.gain], dim=1)
            return wave * self.gain

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    module = Gain(gain, output == "sources").eval()
    if exporter == "jit":
        import warnings

        name = "model.pt"
        with warnings.catch_warnings():  # TorchScript is deprecated in recent torch, still read by denoise
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.script(module).save(str(folder / name))
    else:
        name = "model.pt2"
        dynamic = torch.export.Dim.DYNAMIC  # any batch size and length
        program = torch.export.export(module, (torch.zeros(2, sample_rate),),
                                      dynamic_shapes=({0: dynamic, 1: dynamic},))
        torch.export.save(program, str(folder / name))
    spec = {"format": "mer-ensemble enhancer v1", "model": name, "sample_rate": sample_rate, "output": output,
            "speech_source": "loudest" if output == "sources" else 0, "chunk_seconds": chunk_seconds}
    (folder / "enhancer.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return folder
