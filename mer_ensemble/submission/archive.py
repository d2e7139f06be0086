"""Submission zips: the one CSV inside a zip a team uploads, and the zip written beside a CSV."""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from pathlib import Path

from mer_ensemble.errors import SubmissionError
from mer_ensemble.submission.format import SHOW

__all__ = ["submission_bytes", "zip_bytes", "zip_holds", "zip_path"]

#: how a zip file starts (a local file header, or the end record of an empty archive)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def zip_path(path: str | Path) -> Path:
    """The zip written next to a submission for zipped tasks: same folder and stem, ``.zip``."""
    return Path(path).with_suffix(".zip")


def _looks_like_zip(path: Path) -> bool:
    if path.suffix.lower() == ".zip":
        return True
    with open(path, "rb") as handle:
        return handle.read(4) in _ZIP_MAGIC


def submission_bytes(path: Path, member: str | None = None) -> tuple[str, bytes]:
    """The CSV bytes of a submission file, or of the one CSV inside a submission zip
    (as :func:`~mer_ensemble.submission.write_submission` zips it for upload); returns ``(where, bytes)``.

    A zip must hold exactly one file, at its top level (no folder, no ``..``), named ``member``
    when the task names it (MEIJU: ``submission.csv``), else any ``.csv``; a damaged or
    truncated zip says so."""
    if not _looks_like_zip(path):
        return str(path), path.read_bytes()
    wanted = member or "one .csv file"
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            listed = ", ".join(repr(i.filename) for i in entries[:SHOW]) or "nothing"
            if len(entries) != 1:
                raise SubmissionError(f"{path}: a submission zip must hold exactly {wanted} at its top level; "
                                      f"it holds {len(entries)} member(s): {listed}")
            name = entries[0].filename
            if "/" in name or "\\" in name or name in (".", "..") or entries[0].is_dir():
                raise SubmissionError(f"{path}: member {name!r} has a folder or '..' in its name; a submission zip "
                                      f"holds {wanted} at its top level")
            if (member is not None and name != member) or (member is None and not name.lower().endswith(".csv")):
                raise SubmissionError(f"{path}: member {name!r} is not {wanted}; zip the submission as {wanted}")
            return f"{path}:{name}", archive.read(entries[0])
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise SubmissionError(f"{path}: damaged or truncated zip file ({str(exc).strip() or type(exc).__name__}); "
                              "zip the submission again") from None


def zip_bytes(entry: str, payload: bytes) -> bytes:
    """A zip holding ``payload`` as ``entry`` (a fixed timestamp: the same CSV gives the same zip)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo(entry, date_time=(2025, 1, 1, 0, 0, 0)), payload, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def zip_holds(archive: Path, digest: str | None) -> bool:
    """Whether ``archive`` holds exactly one member whose bytes have the SHA-256 ``digest``
    (raises what :mod:`zipfile` raises for a damaged zip)."""
    with zipfile.ZipFile(archive) as opened:
        members = opened.infolist()
        return len(members) == 1 and hashlib.sha256(opened.read(members[0])).hexdigest() == digest
