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
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mer_ensemble.data.dataset import FeatureBlock
from mer_ensemble.errors import DataError, MerError, MerWarning
from mer_ensemble.io import read_json, read_npy, temp_tag, writing
from mer_ensemble.progress import progress_bar

__all__ = ["FeatureFiles", "feature_level_from_name", "find_feature_files", "load_feature", "present_names"]

CACHE_VERSION = 3
#: cache entries kept per feature besides the one just written (other name sets or folders)
KEEP_OTHER_ENTRIES = 2
_SHOW = 3


def feature_level_from_name(feature: str) -> str | None:
    """``utt`` for ``*-UTT``/``*_UTT``, ``frame`` for ``*-FRA``/``*_FRA``, else None (detect from data)."""
    upper = feature.upper()
    if upper.endswith(("-UTT", "_UTT")):
        return "utt"
    if upper.endswith(("-FRA", "_FRA")):
        return "frame"
    return None


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


# --- reading and validating ---------------------------------------------------------------------


def _read_frame_dir(folder: Path, files: list[str] | None) -> np.ndarray:
    """A per-frame folder as ``(T, D)``: each file ``(D,)`` or ``(1, D)``, in file-name order."""
    if not files:
        raise DataError(f"{folder}: folder holds no per-frame .npy files")
    frames = []
    for file_name in files:
        path = folder / file_name
        arr = read_npy(path, DataError)
        if arr.ndim == 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 1:
            raise DataError(f"{path}: per-frame file has shape {arr.shape}; expected (D,) or (1, D)")
        frames.append(arr)
    dims = Counter(a.shape[0] for a in frames)
    if len(dims) > 1:
        common = dims.most_common(1)[0][0]
        odd = [folder / f for f, a in zip(files, frames, strict=True) if a.shape[0] != common]
        raise DataError(
            f"{odd[0]}: per-frame file has D={frames[files.index(odd[0].name)].shape[0]}, expected D={common} "
            f"like {dims[common]} of the {len(frames)} frames in {folder}"
        )
    return np.stack(frames)


def _signature(arr: np.ndarray, level: str) -> tuple:
    """What must agree across files: the shape (utterance level) or ``("T", D)`` (frame level)."""
    if level == "frame" and arr.ndim == 2:
        return ("T", int(arr.shape[1]))
    return tuple(int(s) for s in arr.shape)


def _shape_text(sig: tuple) -> str:
    if sig and sig[0] == "T":
        return f"(T, {sig[1]})"
    return str(tuple(sig))


def _normalise(arr: np.ndarray, level: str | None) -> np.ndarray:
    """Squeeze as the official reader does: ``(1, D)`` → ``(D,)`` at utterance level,
    ``(D,)`` → ``(1, D)`` (one frame) at frame level."""
    if level == "utt" and arr.ndim == 2 and arr.shape[0] == 1:
        return arr[0]
    if level == "frame" and arr.ndim == 1:
        return arr[None, :]
    return arr


#: the largest magnitude a feature value may have: features are stored and used as float32
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_values(arr: np.ndarray, path: Path) -> None:
    """Refuse what no feature can be: a dtype that is not a real number, no values, no frames."""
    if arr.dtype.kind not in "iuf":
        what = "is not real (features must be real numbers)" if arr.dtype.kind == "c" else "is not numeric"
        raise DataError(f"{path}: dtype {arr.dtype} {what}; expected float or integer values")
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise DataError(f"{path}: shape {arr.shape} holds no feature values")
    if arr.ndim == 2 and arr.shape[0] == 0:
        raise DataError(f"{path}: has 0 frames")


def _check_rank(arr: np.ndarray, raw: np.ndarray, level: str | None, path: Path) -> None:
    """An utterance-level file holds one vector, a frame-level file a ``(T, D)`` matrix."""
    allowed = {"utt": (1,), "frame": (2,)}.get(level or "", (1, 2))
    if arr.ndim not in allowed:
        expected = {"utt": "(D,) or (1, D) at utterance level", "frame": "(T, D) or (D,) at frame level"}.get(
            level or "", "(D,) or (T, D)")
        raise DataError(f"{path}: shape {tuple(raw.shape)}; a feature file holds {expected}")


def _bad_values(arr: np.ndarray) -> str | None:
    """Why ``arr``'s values cannot become finite float32 features (None when they can)."""
    if arr.dtype.kind != "f":
        return None
    finite = np.isfinite(arr)
    if not finite.all():
        return f"{int((~finite).sum())} NaN/inf value(s)"
    if arr.dtype.itemsize > 4:
        beyond = np.abs(arr) > FLOAT32_MAX
        if beyond.any():
            return (f"{int(beyond.sum())} value(s) beyond float32's range ±{FLOAT32_MAX:.3g} "
                    f"(largest magnitude {float(np.abs(arr).max()):.3g})")
    return None


def _values_error(feature: str, bad: list[tuple[str, str]], n: int) -> DataError:
    """One error for every file whose values are not finite float32 numbers: the count and the first few."""
    first, why = bad[0]
    others = ", ".join(f"{Path(p).name} ({w})" for p, w in bad[1:_SHOW])
    more = f" (+{len(bad) - _SHOW} more)" if len(bad) > _SHOW else ""
    listed = f": also {others}{more}" if others else ""
    return DataError(f"{first}: {why}; {len(bad)} of the {n} files of {feature} hold values that are not finite "
                     f"float32 numbers{listed}; features must be finite")


def _mismatch_error(files: FeatureFiles, sigs: list[tuple], shapes: list[tuple]) -> DataError:
    """The error for files whose shape differs from the one most files share."""
    counts = Counter(sigs)
    common, n_common = counts.most_common(1)[0]
    odd = [i for i, s in enumerate(sigs) if s != common]
    first = odd[0]
    listed = ", ".join(Path(files.paths[i]).name for i in odd[:_SHOW])
    more = f" (+{len(odd) - _SHOW} more)" if len(odd) > _SHOW else ""
    return DataError(
        f"{files.paths[first]}: shape {shapes[first]}, expected {_shape_text(common)} like {n_common} of the "
        f"{len(sigs)} files of {files.feature}; {len(odd)} file(s) differ: {listed}{more}"
    )


def _read_folder(files: FeatureFiles) -> tuple[np.ndarray, np.ndarray | None]:
    """Read and validate every item; returns ``(values, offsets)`` (offsets None for utterance level)."""
    names, feature = files.names, files.feature
    missing = [n for n, p in zip(names, files.paths, strict=True) if p is None]
    if missing:
        raise DataError(
            f"feature {feature}: {len(missing)} of {len(names)} names have no file in {files.where()} "
            f"(first: {missing[0]!r}; looked for {missing[0]}.npy or a folder {missing[0]}/)"
        )
    declared = feature_level_from_name(feature)
    n = len(names)
    sigs: list[tuple] = []
    shapes: list[tuple] = []
    values: np.ndarray | None = None  # utterance level: filled in place, (n, D)
    items: list[np.ndarray] = []  # frame level or level not declared: one array per name
    bad: list[tuple[str, str]] = []  # files whose values are not finite float32 numbers
    with progress_bar(n, f"reading {feature}", enabled=None if n > 2000 else False) as advance:
        for i, item in enumerate(files.paths):
            path, frame_files = Path(item), files.frames[i]
            raw = _read_frame_dir(path, frame_files) if frame_files is not None else read_npy(path, DataError)
            level = "frame" if frame_files is not None else declared
            arr = _normalise(raw, level)
            _check_values(arr, path)
            _check_rank(arr, raw, level, path)
            why = _bad_values(arr)
            if why is not None:
                bad.append((str(path), why))
            shapes.append(tuple(int(s) for s in raw.shape))
            if declared == "utt":
                sigs.append(_signature(arr, "utt"))
                if values is None:
                    values = np.empty((n, arr.shape[-1]), dtype=np.float32)
                if arr.shape == values.shape[1:] and why is None:
                    values[i] = arr
            else:
                items.append(arr)
            advance(1)
    if bad:
        raise _values_error(feature, bad, n)
    if declared == "utt":
        if len(set(sigs)) > 1:
            raise _mismatch_error(files, sigs, shapes)
        return values, None
    level = declared or ("utt" if all(a.ndim == 1 for a in items) else "frame")
    items = [_normalise(a, level) for a in items]
    sigs = [_signature(a, level) for a in items]
    if len(set(sigs)) > 1 or (level == "frame" and any(a.ndim != 2 for a in items)):
        raise _mismatch_error(files, sigs, shapes)
    if level == "utt":
        return np.stack(items).astype(np.float32, copy=False), None
    lengths = np.array([a.shape[0] for a in items], dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return np.concatenate(items).astype(np.float32, copy=False), offsets


# --- the cache ----------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def _entry_name(files: FeatureFiles) -> str:
    """The cache folder of a feature: its name plus a digest of the folders and names read."""
    h = hashlib.sha1()
    h.update(f"v{CACHE_VERSION}\n".encode())
    for folder in files.folders:
        h.update(f"{folder.resolve()}\n".encode())
    h.update("\n".join(files.names).encode())
    return f"{_UNSAFE.sub('_', files.feature)}-{h.hexdigest()[:16]}"


def _read_entry(entry: Path, stats: str) -> tuple[str, np.ndarray, np.ndarray | None, str] | None:
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
    entry = cache_dir / _entry_name(files) if cache_dir else None
    if entry is not None:
        cached = _read_entry(entry, files.stats)
        if cached is not None:
            level, values, offsets, digest = cached
            return FeatureBlock(feature, modality, level, values, offsets), digest
    values, offsets = _read_folder(files)
    digest = content_hash(values, offsets)
    level = "utt" if offsets is None else "frame"
    if entry is not None:
        meta = {
            "version": CACHE_VERSION,
            "feature": feature,
            "modality": modality,
            "level": level,
            "dim": int(values.shape[1]),
            "n": len(names),
            "content_hash": digest,
            "checksum": checksum(values, offsets),
            "stats": files.stats,
            "folders": [str(f.resolve()) for f in files.folders],
        }
        _write_cache(entry, values, offsets, meta)
        _prune(entry)
    return FeatureBlock(feature, modality, level, values, offsets), digest


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
