"""Atomic file writes (a temporary name in the same folder, then ``os.replace``) and safe
readers of the project's array and JSON files.

The readers never unpickle (``allow_pickle=False``) and turn every way a file can be
broken (empty, truncated, random bytes, not JSON) into one error of the caller's class
that names the file and what is wrong.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tokenize import TokenError
from typing import Any, BinaryIO

import numpy as np

from mer_ensemble.errors import MerError

__all__ = [
    "atomic_save_npz",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "file_mode",
    "follow_umask",
    "read_json",
    "remove_stale_temps",
    "temp_prefix",
    "temp_tag",
    "read_npy",
    "open_npz",
    "read_npz",
    "writing",
]

#: what numpy raises for a file that is not a readable .npy/.npz (zlib.error: a damaged member;
#: SyntaxError, TokenError: a damaged header, which numpy parses as a Python literal)
_BROKEN = (ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, OSError, SyntaxError, TokenError,
           NotImplementedError, RuntimeError)  # zipfile: a damaged member's compression or encryption flag


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Report an ``OSError`` raised while writing ``path`` (no space left, a read-only disk,
    no permission) with ``path`` as its file name, instead of a temporary name or none:
    a failed ``write()`` carries no file name, and the CLI prints ``<path>: <reason>``."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None or (exc.filename is not None and Path(str(exc.filename)) == Path(path)):
            raise
        raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc


def _current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (``/proc``), else
    by setting and restoring it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: ``0o666`` less the umask."""
    return 0o666 & ~_current_umask()


def follow_umask(fd: int) -> None:
    """Give a ``mkstemp`` file (always ``0o600``) the mode an ordinary new file gets, so
    files users keep (submissions, sidecars, reports) are as readable as their other files."""
    if hasattr(os, "fchmod"):
        os.fchmod(fd, file_mode())


#: a temporary file or folder older than this is a leftover of a killed write wherever its writer ran
STALE_TEMP_SECONDS = 3600
_TAG = r"(?P<host>[A-Za-z0-9_-]+)\+(?P<pid>\d+)"
_TEMP_FILE = re.compile(r"^\..+\." + _TAG + r"\.[A-Za-z0-9_]+\.tmp$")
#: a feature cache entry being written or swapped out (only looked for in a ``cache`` folder)
_TEMP_DIR = re.compile(r"^.+-[0-9a-f]{16}\.(?:tmp|old)\." + _TAG + r"\.[A-Za-z0-9_]+$")
_OLD_TEMP_FILE = re.compile(r"^\..+\.tmp$")  # written before the tag existed
_OLD_TEMP_DIR = re.compile(r"^.+-[0-9a-f]{16}\.(?:tmp|old)-[A-Za-z0-9_]+$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"


def temp_tag() -> str:
    """``<host>+<pid>``: put in every temporary name, so that a later command can tell the leftover
    of a killed write (its process is gone) from a write still under way."""
    return f"{_host()}+{os.getpid()}"


def temp_prefix(name: str) -> str:
    """The ``mkstemp`` prefix of a temporary file written beside ``name`` (a hidden, tagged name)."""
    return f".{name}.{temp_tag()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _stale(entry: os.DirEntry, now: float, in_cache: bool) -> bool:
    """Whether ``entry`` is a temporary file (or, in a cache folder, a temporary cache entry) left by a
    killed write: its writer ran on this machine and is gone, or it is older than
    :data:`STALE_TEMP_SECONDS` (another machine's, or untagged)."""
    if entry.is_dir(follow_symlinks=False):
        if not in_cache:
            return False
        match, old = _TEMP_DIR.match(entry.name), _OLD_TEMP_DIR.match(entry.name)
    else:
        match, old = _TEMP_FILE.match(entry.name), _OLD_TEMP_FILE.match(entry.name)
    if match is None and old is None:
        return False
    if match is not None and match["host"] == _host() and not _alive(int(match["pid"])):
        return True
    try:
        return now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS
    except OSError:
        return False


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the temporary files and folders that killed writes left anywhere under ``folder``
    (see :func:`_stale`); writes still under way are left alone. Returns what was removed."""
    import shutil
    import time

    removed: list[Path] = []
    now = time.time()
    todo = [Path(folder)]
    while todo:
        current = todo.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            if _stale(entry, now, current.name == "cache"):
                try:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
                    removed.append(Path(entry.path))
                except OSError:
                    pass
            elif entry.is_dir(follow_symlinks=False):
                todo.append(Path(entry.path))
    return removed


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file beside it; the file follows the umask."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
        try:
            follow_umask(fd)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return path


def _why(path: Path, exc: BaseException, kind: str) -> str:
    """A short reason a file could not be read as ``kind``; never numpy's advice to unpickle."""
    try:
        if path.stat().st_size == 0:
            return "the file is empty (0 bytes)"
    except OSError:
        pass
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "pickle" in text or isinstance(exc, (zipfile.BadZipFile, zlib.error)) or "magic" in text.lower():
        return f"not a valid {kind} file (damaged, truncated or another format)"
    return f"damaged or truncated {kind} file ({text})"


def _npy_header(fp: BinaryIO, where: str, error: type[MerError], kind: str = ".npy"
                ) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, end of header)`` of the ``.npy`` stream at ``fp``'s position; nothing after
    the header is read. A header that is not one raises numpy's ``ValueError`` or ``error``."""
    fmt = np.lib.format
    version = fmt.read_magic(fp)
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise error(f"{where}: not a valid {kind} file (unknown .npy format version {version[0]}.{version[1]})")
    try:
        # 3.0 differs from 2.0 only in UTF-8 field names, which do not change the shape or the item size
        shape, _, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(fp)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy evaluates the header as a Python literal: anything can fail
        raise error(f"{where}: damaged or truncated {kind} file (its header cannot be read: "
                    f"{type(exc).__name__})") from None
    return tuple(shape), dtype, fp.tell()


def _check_npy_size(where: str, shape: tuple[int, ...], dtype: np.dtype, header_end: int, size: int,
                    error: type[MerError], kind: str = ".npy") -> None:
    """Refuse a header whose shape needs more bytes than the file holds, before anything is
    allocated (a damaged header could otherwise ask for hundreds of GiB)."""
    if dtype.hasobject:
        return  # refused when read (nothing is unpickled)
    need = header_end + math.prod(shape) * dtype.itemsize
    if size < need:
        raise error(f"{where}: damaged or truncated {kind} file (its header promises shape {shape} of {dtype}, "
                    f"{_size_text(need)}, but the file holds {_size_text(size)})")


def _size_text(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def read_npy(path: str | Path, error: type[MerError], *, mmap: bool = False) -> np.ndarray:
    """One ``.npy`` array, or ``error("<path>: ...")``. ``mmap`` memory-maps it read-only.

    The header's shape is compared with the file's size before anything is allocated."""
    path = Path(path)
    try:
        with open(path, "rb") as fp:
            shape, dtype, end = _npy_header(fp, str(path), error)
            _check_npy_size(str(path), shape, dtype, end, os.fstat(fp.fileno()).st_size, error)
            if not mmap:
                fp.seek(0)
                return np.lib.format.read_array(fp, allow_pickle=False)
        return np.load(path, allow_pickle=False, mmap_mode="r")
    except _BROKEN as exc:
        if isinstance(exc, OSError) and not path.is_file():
            raise
        raise error(f"{path}: cannot be read as .npy: {_why(path, exc, '.npy')}") from None


def _check_npz_members(path: Path, error: type[MerError], prefix: str) -> None:
    """Every ``.npy`` member's header against the member's size (see :func:`_check_npy_size`)."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            where = f"{prefix}{path}: member {info.filename}"
            with archive.open(info) as fp:
                shape, dtype, end = _npy_header(fp, where, error, ".npz")
            _check_npy_size(where, shape, dtype, end, info.file_size, error, ".npz")


def read_npz(path: str | Path, error: type[MerError], *, what: str = "") -> dict[str, np.ndarray]:
    """Every array of a ``.npz`` file, read eagerly, or ``error("<path>: ...")``; ``what``
    names the file's role in the message (e.g. ``"run lin"``)."""
    path = Path(path)
    prefix = f"{what}: " if what else ""
    try:
        _check_npz_members(path, error, prefix)
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except _BROKEN as exc:
        if isinstance(exc, OSError) and not path.is_file():
            raise
        raise error(f"{prefix}{path}: cannot be read: {_why(path, exc, '.npz')}") from None


class NpzArrays(dict):
    """The arrays of a ``.npz`` read eagerly; ``files`` lists their names as ``NpzFile.files`` does."""

    @property
    def files(self) -> list[str]:
        return list(self)


@contextmanager
def open_npz(path: str | Path, error: type[MerError], *, what: str = "") -> Iterator[NpzArrays]:
    """``with open_npz(path, StoreError) as npz:`` — :func:`read_npz` in the shape of
    ``with np.load(path) as npz:`` (``npz[name]``, ``npz.files``), for readers written that way."""
    yield NpzArrays(read_npz(path, error, what=what))


def read_json(path: str | Path, error: type[MerError], *, what: str = "") -> Any:
    """A JSON file's content, or ``error("<path>: ...")`` when it is not UTF-8 JSON."""
    path = Path(path)
    prefix = f"{what}: " if what else ""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{prefix}{path}: not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise error(f"{prefix}{path}: the file is empty; expected JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{prefix}{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                    "the file is damaged or truncated") from None


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1, default=_json_default) + "\n")


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> Path:
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
