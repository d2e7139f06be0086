"""``prepare`` for one video, as a worker process runs it: decode, detect and crop faces, keep scene
frames, write the wav, then publish the outputs under their final names and write the video's
record ``.prepare/<name>.json`` (which a rerun reads to skip it). A failure is a manifest row,
never an exception.

The run over a folder (which videos, in how many processes, the manifest) is
:mod:`mer_ensemble.media.prepare`.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mer_ensemble.io import atomic_write_bytes, atomic_write_json

if TYPE_CHECKING:
    from mer_ensemble.media.prepare import PrepareOptions

__all__ = ["RECORDS", "init_worker", "manifest_row", "prepare_one", "record_path", "source_stat"]

#: the folder of per-video records under the output folder
RECORDS = ".prepare"
#: a track whose peak stays under this is reported ``silent`` (-60 dBFS)
SILENT_PEAK = 1e-3


def record_path(out: Path, name: str) -> Path:
    """Where the record of video ``name`` is kept: ``out/.prepare/<name>.json``."""
    return out / RECORDS / f"{name}.json"


def source_stat(path: Path) -> dict[str, int]:
    """What a record keeps of the video file to tell whether it changed: size and modification time."""
    st = path.stat()
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def manifest_row(name: str, status: str, duration: float = 0.0, frames: int = 0, faces: int = 0,
                 error: str = "") -> dict:
    """One row of the manifest (:data:`~mer_ensemble.media.prepare.COLUMNS`)."""
    return {"name": name, "status": status, "duration": round(float(duration), 3), "frames": int(frames),
            "faces": int(faces), "error": error}


_WORKER: dict[str, Any] = {}


def init_worker(options: PrepareOptions) -> None:
    """Build the detector once per process; one OpenCV thread per process (the jobs are the parallelism)."""
    import cv2

    cv2.setNumThreads(1)
    _WORKER["options"] = options
    if options.faces:
        from mer_ensemble.media.faces import make_detector

        _WORKER["detector"] = make_detector(options.detector, min_face=options.min_face, threshold=options.threshold)


def prepare_one(name: str, path: str, out: str) -> dict[str, Any]:
    """Prepare one video; returns its manifest row (a failure is a row, never an exception)."""
    from mer_ensemble.media.video import MediaError

    source, target = Path(path), Path(out)
    stat = source_stat(source)
    staging = [target / part / f".{name}.tmp-{os.getpid()}" for part in ("faces", "frames")]
    try:
        row = _decode_and_write(name, source, target, staging)
    except (MediaError, OSError, MemoryError, ValueError, RuntimeError) as exc:
        _remove_outputs(target, name)
        row = manifest_row(name, "failed", error=_one_line(exc))
    finally:
        for folder in staging:
            shutil.rmtree(folder, ignore_errors=True)
    atomic_write_json(record_path(target, name), {"source": stat, "file": str(source), "row": row})
    return row


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return text or type(exc).__name__


def _remove_outputs(out: Path, name: str) -> None:
    for path in (out / "faces" / name, out / "frames" / name):
        shutil.rmtree(path, ignore_errors=True)
    (out / "audio" / f"{name}.wav").unlink(missing_ok=True)


def _decode_and_write(name: str, source: Path, out: Path, staging: list[Path]) -> dict[str, Any]:
    from mer_ensemble.media.video import VideoReader, every_n_frames, every_seconds

    options: PrepareOptions = _WORKER["options"]
    detector = _WORKER.get("detector")
    face_dir, scene_dir = staging
    face_dir.mkdir(parents=True, exist_ok=True)
    if options.scene_every:
        scene_dir.mkdir(parents=True, exist_ok=True)
    sample_face = every_seconds(options.fps) if detector is not None else (lambda i, t: False)
    sample_scene = every_n_frames(options.scene_every)
    wanted: dict[int, tuple[bool, bool]] = {}

    def want(index: int, seconds: float) -> bool:
        # both choosers keep state, so each is asked exactly once per frame
        face, scene = sample_face(index, seconds), sample_scene(index, seconds)
        if face or scene:
            wanted[index] = (face, scene)
        return face or scene

    reader = VideoReader(source, rate=options.rate)
    boxes: list[tuple[int, np.ndarray]] = []
    for index, rgb in reader.frames(want):
        face, scene = wanted.pop(index)
        if scene:
            _save_jpeg(scene_dir / f"{index:06d}.jpg", rgb, options.jpeg_quality)
        if face:
            box = _detect(detector, rgb, options)
            if box is not None:
                from mer_ensemble.media.faces import face_crop

                crop = face_crop(rgb, box, size=options.face_size, margin=options.margin)
                _save_jpeg(face_dir / f"{index:06d}.jpg", crop, options.jpeg_quality)
                boxes.append((index, box))
    problems = []
    if reader.audio is None:
        problems.append("no_audio")
    elif len(reader.audio) == 0 or float(np.max(np.abs(reader.audio))) < SILENT_PEAK:
        problems.append("silent")
    if detector is not None and not boxes:
        problems.append("no_face")
    if not reader.has_video:
        problems.append("no_video")
    _write_boxes(face_dir / "boxes.csv", boxes)
    _publish(name, out, reader.audio, options.rate, face_dir if detector is not None else None,
             scene_dir if options.scene_every else None)
    return manifest_row(name, "+".join(problems) or "ok", reader.duration, reader.n_frames, len(boxes),
                error=_problem_text(problems, reader, options))


def _problem_text(problems: list[str], reader: Any, options: PrepareOptions) -> str:
    texts = {
        "no_audio": "the file has no audio stream (no wav written)",
        "silent": "the audio track is silent (peak under -60 dBFS)",
        "no_face": f"no face found in any of the frames sampled at {options.fps:g} fps" if options.fps
        else "no face found in any frame",
        "no_video": "the file has no video stream",
    }
    return "; ".join(texts[p] for p in problems)


def _detect(detector: Any, rgb: np.ndarray, options: PrepareOptions) -> np.ndarray | None:
    """The largest face box in source pixels, detecting on a frame scaled to ``max_side``."""
    from mer_ensemble.media.faces import largest

    h, w = rgb.shape[:2]
    scale = min(1.0, options.max_side / max(h, w))
    small = rgb
    if scale < 1.0:
        import cv2

        small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    box = largest(detector.detect(small))
    if box is None:
        return None
    box = box.astype(np.float64).copy()
    box[:4] /= scale
    return box


def _save_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    import cv2

    ok, buffer = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"cannot encode {path.name} as JPEG")
    path.write_bytes(buffer.tobytes())


def _write_boxes(path: Path, boxes: list[tuple[int, np.ndarray]]) -> None:
    lines = ["frame,x1,y1,x2,y2,score"]
    lines += [f"{i},{b[0]:.1f},{b[1]:.1f},{b[2]:.1f},{b[3]:.1f},{b[4]:.4f}" for i, b in boxes]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _publish(name: str, out: Path, audio: np.ndarray | None, rate: int, faces: Path | None,
             scenes: Path | None) -> None:
    """Move one video's outputs to their final names (folders renamed, the wav written atomically)."""
    wav = out / "audio" / f"{name}.wav"
    if audio is not None:
        import soundfile as sf

        buffer = io.BytesIO()
        sf.write(buffer, np.clip(audio, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
        atomic_write_bytes(wav, buffer.getvalue())
    else:
        wav.unlink(missing_ok=True)
    for staged, part in ((faces, "faces"), (scenes, "frames")):
        final = out / part / name
        if final.exists():
            shutil.rmtree(final)
        if staged is not None:
            os.replace(staged, final)
