"""Utterance names as lists give them: one rule for stripping a media extension and one
check that a name cannot reach outside a feature folder.

A name becomes a file path (``<feature folder>/<name>.npy``) and a submission row, so
a name read from a label, test, pool or candidate list must be a plain file name: no
path separator, not ``.`` or ``..``, no control character. Competition lists name the
media file (MEIJU: ``Track1_Training_00001.mp4``); the name is the file name without
that extension, stripped once, the same way by every reader (layouts, ``extract
--name-column``, truth files).
"""

from __future__ import annotations

import os

from mer_ensemble.errors import DataError

__all__ = ["GROUP_SUFFIX", "MEDIA_EXTENSIONS", "check_name", "name_problem", "strip_extension"]

#: the suffix that names a group-normalised feature (``<feature>@group``, :mod:`mer_ensemble.data.groupnorm`);
#: here, below both the config (``models: auto`` names such features) and the data layer that makes them
GROUP_SUFFIX = "@group"

#: extensions stripped from names (``Track1_Testing_00001.mp4`` → ``Track1_Testing_00001``)
MEDIA_EXTENSIONS = (
    ".mp4", ".avi", ".mkv", ".webm", ".mov", ".flv", ".wav", ".mp3", ".flac", ".m4a", ".ogg", ".npy", ".txt",
)


def strip_extension(name: str) -> str:
    """``name`` without one trailing media extension (case-insensitive); other dots are kept."""
    root, ext = os.path.splitext(name)
    return root if root and ext.lower() in MEDIA_EXTENSIONS else name


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an utterance name, or None when it is fine."""
    if name == "":
        return "is empty"
    if "/" in name or "\\" in name:
        return "holds a path separator"
    if name in (".", ".."):
        return "is a relative path"
    bad = next((c for c in name if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        return f"holds the control character {bad!r}"
    return None


def check_name(name: str, where: str) -> str:
    """``name`` unchanged, or a :class:`DataError` naming ``where`` (file and line) and the problem."""
    problem = name_problem(name)
    if problem:
        raise DataError(
            f"{where}: name {name!r} {problem}; a name must be a plain file name "
            "(no '/', '\\\\', '.', '..' or control characters)"
        )
    return name
