"""Reading feature folders, validating them, and caching them as memory-mapped arrays.

A feature folder holds ``<name>.npy`` per utterance: ``(D,)`` utterance level or
``(T, D)`` frame level, or a folder ``<name>/`` of per-frame ``.npy`` files
(each ``(D,)``, sorted by file name). The first read validates every file and
writes one contiguous array per feature into the cache; later reads memory-map it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mer_ensemble.data.dataset import FeatureBlock
from mer_ensemble.errors import DataError
from mer_ensemble.progress import progress_bar

__all__ = ["feature_level_from_name", "load_feature"]

CACHE_VERSION = 1


def feature_level_from_name(feature: str) -> str | None:
    """``utt`` for ``*-UTT``/``*_UTT``, ``frame`` for ``*-FRA``/``*_FRA``, else None (detect from data)."""
    upper = feature.upper()
    if upper.endswith(("-UTT", "_UTT")):
        return "utt"
    if upper.endswith(("-FRA", "_FRA")):
        return "frame"
    return None


def _read_item(folder: Path, name: str) -> tuple[np.ndarray, Path]:
    path = folder / f"{name}.npy"
    if path.is_file():
        try:
            return np.load(path, allow_pickle=False), path
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"{path}: cannot be read as .npy ({str(exc).splitlines()[0]})") from None
    frame_dir = folder / name
    if frame_dir.is_dir():
        files = sorted(frame_dir.glob("*.npy"))
        if not files:
            raise DataError(f"{frame_dir}: folder holds no per-frame .npy files")
        frames = []
        for f in files:
            arr = np.load(f, allow_pickle=False)
            if arr.ndim != 1:
                raise DataError(f"{f}: per-frame file has shape {arr.shape}; expected (D,)")
            frames.append(arr)
        dims = {a.shape[0] for a in frames}
        if len(dims) > 1:
            raise DataError(f"{frame_dir}: per-frame files disagree on D: {sorted(dims)}")
        return np.stack(frames), frame_dir
    raise DataError(f"missing feature file {path} for name {name!r}")


def _cache_key(folder: Path, names: Sequence[str], max_frames: int | None) -> str:
    h = hashlib.sha1()
    h.update(str(folder.resolve()).encode())
    h.update(str(folder.stat().st_mtime_ns).encode())
    h.update(str(max_frames).encode())
    h.update(f"v{CACHE_VERSION}".encode())
    h.update("\n".join(names).encode())
    return h.hexdigest()[:16]


def content_hash(values: np.ndarray, offsets: np.ndarray | None) -> str:
    """Hash of a feature's numbers (and frame offsets), for the dataset fingerprint."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(values).view(np.uint8).reshape(-1).data)
    if offsets is not None:
        h.update(np.ascontiguousarray(offsets).tobytes())
    return h.hexdigest()


def _read_folder(folder: Path, names: Sequence[str], feature: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Read and validate every item; returns ``(values, offsets)`` (offsets None for utterance level)."""
    declared = feature_level_from_name(feature)
    level: str | None = None
    dim: int | None = None
    values: np.ndarray | None = None
    frames: list[np.ndarray] = []
    lengths = np.zeros(len(names), dtype=np.int64)
    missing = [n for n in names if not (folder / f"{n}.npy").is_file() and not (folder / n).is_dir()]
    if missing:
        raise DataError(
            f"feature {feature}: {len(missing)} of {len(names)} names have no file in {folder} "
            f"(first: {folder / (missing[0] + '.npy')})"
        )
    with progress_bar(len(names), f"reading {feature}", enabled=None if len(names) > 2000 else False) as advance:
        for i, name in enumerate(names):
            arr, path = _read_item(folder, name)
            if level is None:
                if declared == "utt" and arr.ndim == 2 and arr.shape[0] == 1:
                    arr = arr[0]
                level = declared or ("utt" if arr.ndim == 1 else "frame")
                dim = int(arr.shape[-1]) if arr.ndim else 0
                if level == "utt":
                    values = np.empty((len(names), dim), dtype=np.float32)
            if level == "utt" and arr.ndim == 2 and arr.shape[0] == 1:
                arr = arr[0]
            expected = f"({dim},)" if level == "utt" else f"(T, {dim})"
            if (level == "utt" and arr.shape != (dim,)) or (
                level == "frame" and (arr.ndim != 2 or arr.shape[1] != dim)
            ):
                raise DataError(f"{path}: shape {arr.shape}, expected {expected} like the other files of {feature}")
            if not np.issubdtype(arr.dtype, np.number):
                raise DataError(f"{path}: dtype {arr.dtype} is not numeric")
            if level == "frame" and arr.shape[0] == 0:
                raise DataError(f"{path}: has 0 frames")
            if not np.isfinite(arr).all():
                bad = int((~np.isfinite(arr)).sum())
                raise DataError(f"{path}: {bad} NaN/inf value(s); features must be finite")
            if level == "utt":
                values[i] = arr
            else:
                frames.append(np.asarray(arr, dtype=np.float32))
                lengths[i] = arr.shape[0]
            advance(1)
    if level == "utt":
        return values, None
    offsets = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return np.concatenate(frames).astype(np.float32, copy=False), offsets


def load_feature(
    folder: Path,
    names: Sequence[str],
    *,
    feature: str,
    modality: str,
    cache_dir: Path | None = None,
) -> tuple[FeatureBlock, str]:
    """Load one feature for ``names`` (in that order); returns the block and its content hash.

    With ``cache_dir`` the first call writes ``values.npy`` (+ ``offsets.npy``) and
    ``meta.json`` there (atomically) and later calls memory-map them.
    """
    if not folder.is_dir():
        raise DataError(f"feature folder {folder} not found (feature {feature!r}, modality {modality!r})")
    names = list(names)
    entry = cache_dir / f"{feature}-{_cache_key(folder, names, None)}" if cache_dir else None
    if entry is not None and (entry / "meta.json").is_file():
        meta = json.loads((entry / "meta.json").read_text())
        values = np.load(entry / "values.npy", mmap_mode="r")
        offsets = np.load(entry / "offsets.npy") if meta["level"] == "frame" else None
        return FeatureBlock(feature, modality, meta["level"], values, offsets), meta["content_hash"]
    values, offsets = _read_folder(folder, names, feature)
    digest = content_hash(values, offsets)
    level = "utt" if offsets is None else "frame"
    if entry is not None:
        _write_cache(
            entry,
            values,
            offsets,
            {
                "level": level,
                "dim": int(values.shape[1]),
                "n": len(names),
                "content_hash": digest,
                "folder": str(folder.resolve()),
            },
        )
    return FeatureBlock(feature, modality, level, values, offsets), digest


def _write_cache(entry: Path, values: np.ndarray, offsets: np.ndarray | None, meta: dict) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=entry.name + ".tmp-", dir=entry.parent))
    try:
        np.save(tmp / "values.npy", values)
        if offsets is not None:
            np.save(tmp / "offsets.npy", offsets)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.replace(tmp, entry)
        except OSError:
            if not (entry / "meta.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
