"""Reading feature folders, validating them, and caching them as memory-mapped arrays.

A feature folder holds ``<name>.npy`` per utterance: ``(D,)`` utterance level or
``(T, D)`` frame level, or a folder ``<name>/`` of per-frame ``.npy`` files (each
``(D,)`` or ``(1, D)``, sorted by file name). As the official MER2024 reader squeezes
its arrays, a ``(D,)`` file in a frame-level folder is a one-frame clip and a
``(1, D)`` file in an utterance-level folder is one vector.

A feature may live under several roots (``data.feature_root`` as a list, e.g. MEIJU
Track 1's ``Annotation/features`` and ``NoAnnotation/features``): each name is looked
up in the roots in order and the first hit is read.

The first read validates every file and writes one contiguous array per feature into
the cache; later reads memory-map it. A cache entry is keyed by the folders and names
read and records each file's size, mtime, ctime and inode (one ``scandir`` per folder,
no file contents are read on a hit): a file changed in place, added or removed makes
the next load read and validate every file again. The entry's values carry a CRC-32,
checked on every load: an entry changed in place is read again from the feature files.

This module finds the files and loads a feature; reading and validating them is
:mod:`mer_ensemble.data.feature_read`, the cache :mod:`mer_ensemble.data.feature_cache`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mer_ensemble.data.dataset import FeatureBlock
from mer_ensemble.data.feature_cache import KEEP_OTHER_ENTRIES, entry_name, read_entry, write_entry
from mer_ensemble.data.feature_read import feature_level_from_name, read_feature_files
from mer_ensemble.errors import DataError

__all__ = ["KEEP_OTHER_ENTRIES", "FeatureFiles", "feature_level_from_name", "find_feature_files", "load_feature",
           "present_names"]


@dataclass
class FeatureFiles:
    """Where every name of one feature was found.

    ``folders``: the feature folders searched, in order (those that exist);
    ``paths[i]``: the ``.npy`` file or per-frame folder of ``names[i]`` as a string (None: in
    no folder; strings, as building a million ``Path`` objects would dominate a cache hit);
    ``frames[i]``: the per-frame file names of a per-frame folder, sorted (else None);
    ``stats``: a digest of every file's size, mtime, ctime and inode, in name order.
    """

    feature: str
    folders: tuple[Path, ...]
    names: list[str]
    paths: list[str | None]
    frames: list[list[str] | None]
    stats: str

    @property
    def present(self) -> np.ndarray:
        """``(n,)`` bool: names with a file."""
        return np.array([p is not None for p in self.paths], dtype=bool)

    def where(self) -> str:
        return ", ".join(str(f) for f in self.folders)


def _listing(folder: Path) -> tuple[dict[str, os.DirEntry], dict[str, os.DirEntry]]:
    """``(npy files by stem, sub-folders by name)`` of one folder, from one ``scandir``."""
    files: dict[str, os.DirEntry] = {}
    dirs: dict[str, os.DirEntry] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(".npy") and entry.is_file():
                files[entry.name[:-4]] = entry
            elif entry.is_dir():
                dirs[entry.name] = entry
    return files, dirs


def present_names(folders: Sequence[Path]) -> set[str] | None:
    """Every name with a ``<name>.npy`` file or a ``<name>/`` folder in any of ``folders`` (one
    ``scandir`` each, nothing read); None when none of the folders exists."""
    existing = [f for f in folders if f.is_dir()]
    if not existing:
        return None
    names: set[str] = set()
    for folder in existing:
        files, dirs = _listing(folder)
        names.update(files, dirs)
    return names


def _stats(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def find_feature_files(folders: Sequence[Path], names: Sequence[str], feature: str) -> FeatureFiles:
    """Look every name up in ``folders`` (in order) and record the stats of what would be read.

    One ``scandir`` per folder and one ``stat`` per file (per-frame folders: per frame
    file); no contents are read. Raises :class:`DataError` when none of the folders exists.
    """
    existing = tuple(f for f in folders if f.is_dir())
    if not existing:
        where = ", ".join(str(f) for f in folders)
        raise DataError(f"feature folder {feature} not found (looked in {where})")
    listings = [_listing(folder) for folder in existing]
    n = len(names)
    where = np.full(n, -1, dtype=np.int64)  # folder index per name, -1 when in none
    entries: list[os.DirEntry | None] = [None] * n
    paths: list[str | None] = [None] * n
    frames: list[list[str] | None] = [None] * n
    frame_stats: list[tuple] = []
    for i, name in enumerate(names):
        for index, (files, dirs) in enumerate(listings):
            entry = files.get(name)
            if entry is not None:
                where[i], entries[i], paths[i] = index, entry, entry.path
                break
            if name in dirs:
                folder = dirs[name].path
                with os.scandir(folder) as listed:
                    found = sorted(
                        (e.name, _stats(e.stat())) for e in listed if e.name.endswith(".npy") and e.is_file()
                    )
                where[i], paths[i], frames[i] = index, folder, [f for f, _ in found]
                frame_stats.append((i, found))
                break
    stats = np.array([_stats(e.stat()) if e is not None else (0, 0, 0, 0) for e in entries], dtype=np.int64)
    h = hashlib.blake2b(digest_size=16)
    h.update("\n".join(str(f) for f in existing).encode() + b"\0" + "\n".join(names).encode() + b"\0")
    h.update(where.tobytes())
    h.update(stats.tobytes())
    h.update(repr(frame_stats).encode())
    return FeatureFiles(feature, existing, list(names), paths, frames, h.hexdigest())


def content_hash(values: np.ndarray, offsets: np.ndarray | None) -> str:
    """Hash of a feature's numbers (and frame offsets), for the dataset fingerprint."""
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(values).view(np.uint8).reshape(-1).data)
    if offsets is not None:
        h.update(np.ascontiguousarray(offsets).tobytes())
    return h.hexdigest()


def load_feature(
    folders: Path | Sequence[Path],
    names: Sequence[str],
    *,
    feature: str,
    modality: str,
    cache_dir: Path | None = None,
    files: FeatureFiles | None = None,
) -> tuple[FeatureBlock, str]:
    """Load one feature for ``names`` (in that order); returns the block and its content hash.

    ``folders``: the feature's folder, or its folders under several roots in search order.
    ``files``: a lookup already made by :func:`find_feature_files` (else made here).
    With ``cache_dir`` the first call writes ``values.npy`` (+ ``offsets.npy``) and
    ``meta.json`` there (atomically) and later calls memory-map them, as long as no file
    read has changed since (size, mtime, ctime, inode).
    """
    folder_list = [Path(folders)] if isinstance(folders, (str, os.PathLike)) else [Path(f) for f in folders]
    names = list(names)
    files = files or find_feature_files(folder_list, names, feature)
    entry = cache_dir / entry_name(files) if cache_dir else None
    if entry is not None:
        cached = read_entry(entry, files.stats)
        if cached is not None:
            level, values, offsets, digest = cached
            return FeatureBlock(feature, modality, level, values, offsets), digest
    values, offsets = read_feature_files(files)
    digest = content_hash(values, offsets)
    level = "utt" if offsets is None else "frame"
    if entry is not None:
        write_entry(entry, files, feature=feature, modality=modality, n=len(names), values=values, offsets=offsets,
                    content_hash=digest)
    return FeatureBlock(feature, modality, level, values, offsets), digest
