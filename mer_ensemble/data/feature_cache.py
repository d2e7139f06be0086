"""The feature cache: one contiguous array per feature (``values.npy``, ``offsets.npy`` at frame
level, ``meta.json``), keyed by the folders and names read, memory-mapped on later loads as long as
the stats of the files read are unchanged and the values still match their CRC-32. Entries are
written under a temporary name and swapped in; older entries of a feature are pruned."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mer_ensemble.errors import DataError, MerError, MerWarning
from mer_ensemble.io import read_json, read_npy, temp_tag, writing

if TYPE_CHECKING:
    from mer_ensemble.data.features import FeatureFiles

__all__ = ["CACHE_VERSION", "KEEP_OTHER_ENTRIES", "checksum", "entry_name", "read_entry", "write_entry"]

CACHE_VERSION = 3
#: cache entries kept per feature besides the one just written (other name sets or folders)
KEEP_OTHER_ENTRIES = 2

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def entry_name(files: FeatureFiles) -> str:
    """The cache folder of a feature: its name plus a digest of the folders and names read."""
    h = hashlib.sha1()
    h.update(f"v{CACHE_VERSION}\n".encode())
    for folder in files.folders:
        h.update(f"{folder.resolve()}\n".encode())
    h.update("\n".join(files.names).encode())
    return f"{_UNSAFE.sub('_', files.feature)}-{h.hexdigest()[:16]}"


def read_entry(entry: Path, stats: str) -> tuple[str, np.ndarray, np.ndarray | None, str] | None:
    """``(level, values, offsets, content hash)`` of a complete entry made from files with
    ``stats``; None when it is absent, stale or damaged (then it is rebuilt)."""
    meta_path = entry / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = read_json(meta_path, DataError)
        if meta.get("version") != CACHE_VERSION or meta.get("stats") != stats:
            return None
        values = read_npy(entry / "values.npy", DataError, mmap=True)
        offsets = read_npy(entry / "offsets.npy", DataError) if meta["level"] == "frame" else None
        if values.ndim != 2 or (offsets is not None and offsets[-1] != len(values)):
            return None
        if checksum(values, offsets) != meta["checksum"]:
            warnings.warn(MerWarning(f"{entry / 'values.npy'}: the cached values of {meta['feature']} no longer "
                                     "match their checksum (changed since written); read again from the feature "
                                     "files"), stacklevel=2)
            return None
        return meta["level"], values, offsets, meta["content_hash"]
    except (MerError, KeyError, TypeError, AttributeError, IndexError):
        return None


def checksum(values: np.ndarray, offsets: np.ndarray | None) -> int:
    """CRC-32 of a cache entry's bytes (values, then frame offsets): recorded when the entry is
    written, checked on every load (a few GB/s), so values changed in place, a constant file or a
    link to other data are read again from the feature files instead of reaching a model."""
    crc = zlib.crc32(np.ascontiguousarray(values).view(np.uint8).reshape(-1).data)
    if offsets is not None:
        crc = zlib.crc32(np.ascontiguousarray(offsets).tobytes(), crc)
    return crc


def write_entry(entry: Path, files: FeatureFiles, *, feature: str, modality: str, n: int, values: np.ndarray,
                offsets: np.ndarray | None, content_hash: str) -> None:
    """Write the entry of a feature just read (values ``(N, D)``, frame offsets ``(n + 1,)`` or None),
    recording what :func:`read_entry` checks, then prune the feature's older entries."""
    meta = {
        "version": CACHE_VERSION,
        "feature": feature,
        "modality": modality,
        "level": "utt" if offsets is None else "frame",
        "dim": int(values.shape[1]),
        "n": n,
        "content_hash": content_hash,
        "checksum": checksum(values, offsets),
        "stats": files.stats,
        "folders": [str(f.resolve()) for f in files.folders],
    }
    _write_cache(entry, values, offsets, meta)
    _prune(entry)


def _write_cache(entry: Path, values: np.ndarray, offsets: np.ndarray | None, meta: dict) -> None:
    """Write an entry under a temporary name, then swap it in (an older entry is moved aside first)."""
    with writing(entry):
        _swap_in(entry, values, offsets, meta)


def _swap_in(entry: Path, values: np.ndarray, offsets: np.ndarray | None, meta: dict) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{entry.name}.tmp.{temp_tag()}.", dir=entry.parent))
    old: Path | None = None
    try:
        np.save(tmp / "values.npy", values)
        if offsets is not None:
            np.save(tmp / "offsets.npy", offsets)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if entry.exists():
            old = Path(tempfile.mkdtemp(prefix=f"{entry.name}.old.{temp_tag()}.", dir=entry.parent))
            os.replace(entry, old / "entry")
        try:
            os.replace(tmp, entry)
        except OSError:
            if not (entry / "meta.json").is_file():
                raise
    finally:
        for path in (tmp, old):
            if path is not None and path.exists():
                shutil.rmtree(path, ignore_errors=True)


def _prune(entry: Path) -> None:
    """Keep the newest :data:`KEEP_OTHER_ENTRIES` other entries of the same feature; remove the rest."""
    stem = entry.name.rsplit("-", 1)[0]
    others = [p for p in entry.parent.glob(f"{stem}-*") if p != entry and (p / "meta.json").is_file()
              and p.name.rsplit("-", 1)[0] == stem and len(p.name.rsplit("-", 1)[1]) == 16]
    others.sort(key=lambda p: (p / "meta.json").stat().st_mtime_ns, reverse=True)
    for stale in others[KEEP_OTHER_ENTRIES:]:
        shutil.rmtree(stale, ignore_errors=True)
