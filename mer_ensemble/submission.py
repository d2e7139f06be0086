"""Submission files per competition: writers that validate before writing, validators, and scoring.

Formats (``TaskSpec.submission``):

- ``mer2024``: CSV ``name,discrete``, the class as its lowercase name.
- ``meiju``: CSV ``filename,emo_pred,int_pred`` with label names, zipped as ``submission.csv``.
- ``generic``: CSV ``name,<target>...`` with label names.

The header is ``[task.name_column] + [task.column_for(t) for t in task.targets]``.
Every error is one line naming the file, the column, line or value, and what was expected.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from mer_ensemble.errors import DataError, SubmissionError
from mer_ensemble.names import MEDIA_EXTENSIONS, strip_extension
from mer_ensemble.tasks import TaskSpec

__all__ = [
    "MEDIA_EXTENSIONS",
    "expected_header",
    "label_text",
    "output_paths",
    "parse_submission",
    "read_truth",
    "score_submission",
    "sidecar_path",
    "validate_submission",
    "write_submission",
    "written_here",
    "zip_path",
]

#: columns accepted as the name column of a truth file, besides the task's own
TRUTH_NAME_COLUMNS = ("name", "filename", "FileName")
_SHOW = 5


def _first(items: Sequence[str], limit: int = _SHOW) -> str:
    shown = ", ".join(repr(str(i)) for i in list(items)[:limit])
    return shown + (f" … (+{len(items) - limit} more)" if len(items) > limit else "")


def expected_header(task: TaskSpec) -> list[str]:
    """The submission header of ``task``: name column, then one column per target."""
    return [task.name_column] + [task.column_for(t) for t in task.target_names]


def label_text(task: TaskSpec, target: str) -> list[str]:
    """How each class of ``target`` is written in the submission, in class-index order."""
    classes = list(task.target(target).classes)
    return [c.lower() for c in classes] if task.submission == "mer2024" else classes


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar written next to a submission: same folder and stem, ``.json``."""
    return Path(path).with_suffix(".json")


def zip_path(path: str | Path) -> Path:
    """The zip written next to a submission for zipped tasks: same folder and stem, ``.zip``."""
    return Path(path).with_suffix(".zip")


# --- reading and validating -----------------------------------------------------------------------


class _Table(NamedTuple):
    """A submission as read: ``where`` (file or "submission frame"), header, rows and their line numbers."""

    where: str
    header: list[str]
    rows: list[list[str]]
    lines: list[int]


def _read_table(source: str | Path | pd.DataFrame, member: str | None = None) -> _Table:
    """Header and data rows of a CSV file or frame, with one-line errors for unreadable or empty files
    (``member``: the one name a zip of this task may hold)."""
    if isinstance(source, pd.DataFrame):
        values = source.astype(object).where(source.notna(), "").astype(str).values.tolist()
        return _Table("submission frame", [str(c) for c in source.columns], values, list(range(2, len(values) + 2)))
    path = Path(source)
    if not path.is_file():
        raise SubmissionError(f"{path}: submission file not found")
    where, data = _submission_bytes(path, member)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SubmissionError(f"{where}: not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    if not text.strip():
        raise SubmissionError(f"{where}: the file is empty; expected a header line and one row per test name")
    if text.startswith("\ufeff"):
        raise SubmissionError(f"{where}: starts with a byte-order mark (UTF-8 BOM); save it as plain UTF-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        numbered = [(reader.line_num, row) for row in reader if row]
    except csv.Error as exc:
        raise SubmissionError(f"{where}: line {reader.line_num + 1}: cannot be read as CSV ({exc})") from None
    header = numbered[0][1]
    for line, row in numbered[1:]:
        if len(row) != len(header):
            raise SubmissionError(f"{where}: line {line} has {len(row)} fields; the header has {len(header)}")
    return _Table(where, header, [row for _, row in numbered[1:]], [line for line, _ in numbered[1:]])


#: how a zip file starts (a local file header, or the end record of an empty archive)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _looks_like_zip(path: Path) -> bool:
    if path.suffix.lower() == ".zip":
        return True
    with open(path, "rb") as handle:
        return handle.read(4) in _ZIP_MAGIC


def _submission_bytes(path: Path, member: str | None = None) -> tuple[str, bytes]:
    """The CSV bytes of a submission file, or of the one CSV inside a submission zip
    (as :func:`write_submission` zips it for upload); returns ``(where, bytes)``.

    A zip must hold exactly one file, at its top level (no folder, no ``..``), named ``member``
    when the task names it (MEIJU: ``submission.csv``), else any ``.csv``; a damaged or
    truncated zip says so."""
    if not _looks_like_zip(path):
        return str(path), path.read_bytes()
    wanted = member or "one .csv file"
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            listed = ", ".join(repr(i.filename) for i in entries[:_SHOW]) or "nothing"
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


def _check_header(where: str, header: list[str], task: TaskSpec) -> None:
    expected = expected_header(task)
    if header == expected:
        return
    missing = [c for c in expected if c not in header]
    unexpected = [c for c in header if c not in expected]
    detail = []
    if missing:
        detail.append(f"missing column(s) {', '.join(missing)}")
    if unexpected:
        detail.append(f"unexpected column(s) {', '.join(unexpected)}")
    if not detail:
        detail.append("columns in the wrong order or repeated")
    raise SubmissionError(
        f"{where}: header is {','.join(header)!r}; expected {','.join(expected)!r} ({'; '.join(detail)})"
    )


def _parse(source: str | Path | pd.DataFrame, task: TaskSpec) -> tuple[pd.DataFrame, str]:
    """:func:`parse_submission`, also returning where the submission came from (for messages)."""
    table = _read_table(source, (task.submission_filename or "submission.csv") if task.zip_submission else None)
    where, rows = table.where, table.rows
    _check_header(where, table.header, task)
    if not rows:
        raise SubmissionError(f"{where}: has a header but no rows; expected one row per test name")
    name_col = task.name_column
    for line, row in zip(table.lines, rows, strict=True):
        if not row[0].strip():
            raise SubmissionError(f"{where}: line {line}: empty {name_col}")
    for j, target in enumerate(task.target_names, start=1):
        allowed = label_text(task, target)
        allowed_set = set(allowed)
        column = task.column_for(target)
        for line, row in zip(table.lines, rows, strict=True):
            if row[j] not in allowed_set:
                raise SubmissionError(
                    f"{where}: line {line} ({name_col} {row[0]!r}): {column} value {row[j]!r} is not a class of "
                    f"{target}; allowed: {', '.join(allowed)}"
                )
    counts = Counter(row[0] for row in rows)
    repeated = [name for name, count in counts.items() if count > 1]
    if repeated:
        lines = [line for line, row in zip(table.lines, rows, strict=True) if row[0] == repeated[0]]
        raise SubmissionError(
            f"{where}: {len(repeated)} duplicate {name_col}(s), e.g. {repeated[0]!r} on lines "
            f"{', '.join(map(str, lines[:_SHOW]))}; expected each name once"
        )
    return pd.DataFrame(rows, columns=table.header, dtype=str), where


def parse_submission(source: str | Path | pd.DataFrame, task: TaskSpec) -> pd.DataFrame:
    """Read a submission and check its format: header, non-empty unique names, known labels.

    Returns the frame (all columns as ``str``). Does not compare against a test set;
    see :func:`validate_submission`. Raises :class:`SubmissionError`.
    """
    return _parse(source, task)[0]


def _extension_hint(extra: list[str], missing: set[str]) -> str:
    stripped = {strip_extension(e) for e in extra}
    return " (the names carry a file extension; write them without it)" if stripped & missing else ""


def validate_submission(source: str | Path | pd.DataFrame, task: TaskSpec, test_names: Sequence[str]) -> pd.DataFrame:
    """Check a submission file (or frame) against ``task``'s format and the test set ``test_names``.

    Checks, each failing with a one-line :class:`SubmissionError`: empty file, header,
    field counts, empty or duplicate names, labels outside the class list, test names
    missing from the file, names in the file that are not test names. Returns the frame.
    """
    frame, where = _parse(source, task)
    expected = [str(n) for n in test_names]
    expected_set = set(expected)
    present = frame[task.name_column].tolist()
    present_set = set(present)
    missing = [n for n in expected if n not in present_set]
    extra = [n for n in present if n not in expected_set]
    if missing:
        raise SubmissionError(
            f"{where}: {len(missing)} of {len(expected_set)} test names missing, e.g. {_first(missing)}"
            + _extension_hint(extra, set(missing))
        )
    if extra:
        raise SubmissionError(
            f"{where}: {len(extra)} name(s) not in the test set, e.g. {_first(extra)}; expected only the "
            f"{len(expected_set)} test names"
        )
    return frame


# --- writing --------------------------------------------------------------------------------------


def _labels_frame(labels: Mapping[str, np.ndarray], names: Sequence[str], task: TaskSpec) -> pd.DataFrame:
    unknown = sorted(set(labels) - set(task.target_names))
    missing = [t for t in task.target_names if t not in labels]
    if unknown or missing:
        raise SubmissionError(
            f"labels are given for targets {sorted(labels)}; task {task.name} needs exactly {task.target_names}"
        )
    frame = pd.DataFrame({task.name_column: [str(n) for n in names]})
    for target in task.target_names:
        idx = np.asarray(labels[target])
        if idx.shape != (len(names),):
            raise SubmissionError(f"labels[{target!r}] has shape {idx.shape}; expected ({len(names)},), one per name")
        if not np.issubdtype(idx.dtype, np.integer):
            raise SubmissionError(f"labels[{target!r}] must hold class indices (integers); got dtype {idx.dtype}")
        text = label_text(task, target)
        bad = np.flatnonzero((idx < 0) | (idx >= len(text)))
        if bad.size:
            raise SubmissionError(
                f"labels[{target!r}] row {int(bad[0])} ({names[int(bad[0])]!r}) holds class index {int(idx[bad[0]])};"
                f" expected 0..{len(text) - 1}"
            )
        frame[task.column_for(target)] = np.asarray(text, dtype=object)[idx]
    return frame


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"sidecar value of type {type(obj).__name__} is not JSON serialisable")


def _zip_bytes(entry: str, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo(entry, date_time=(2025, 1, 1, 0, 0, 0)), payload, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def _write_all_atomically(payloads: Mapping[Path, bytes]) -> None:
    """Write every payload to a temporary file beside its target, then rename each into place."""
    from mer_ensemble.io import follow_umask, temp_prefix, writing

    temps: dict[Path, str] = {}
    try:
        for target, data in payloads.items():
            with writing(target):
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target.name), suffix=".tmp", dir=target.parent)
                temps[target] = tmp
                follow_umask(fd)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
        for target, tmp in temps.items():
            with writing(target):
                os.replace(tmp, target)
    finally:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)


def write_submission(
    labels: Mapping[str, np.ndarray],
    names: Sequence[str],
    task: TaskSpec,
    path: str | Path,
    *,
    sidecar: Mapping[str, Any] | None = None,
) -> Path:
    """Validate, then atomically write the submission CSV, its JSON sidecar and (zipped tasks) its zip.

    ``labels[target]`` ``(n,)`` class indices per row of ``names`` ``(n,)``. ``path`` is
    the CSV to write (a folder gets ``task.submission_filename`` or ``submission.csv``).
    The sidecar ``<stem>.json`` records the file, row count, header, SHA-256 and the
    zip, updated with ``sidecar``. For ``task.zip_submission`` the zip ``<stem>.zip``
    holds the CSV as ``submission.csv`` (or ``task.submission_filename``). Nothing is
    written when validation fails. Returns the CSV path.
    """
    path = output_paths(path, task)[0]
    frame = _labels_frame(labels, names, task)
    validate_submission(frame, task, [str(n) for n in names])
    csv_bytes = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
    payloads: dict[Path, bytes] = {path: csv_bytes}
    record: dict[str, Any] = {
        "submission": path.name,
        "format": task.submission,
        "header": expected_header(task),
        "rows": len(frame),
        "sha256": hashlib.sha256(csv_bytes).hexdigest(),
        "zip": None,
    }
    if task.zip_submission:
        payloads[zip_path(path)] = _zip_bytes(task.submission_filename or "submission.csv", csv_bytes)
        record["zip"] = zip_path(path).name
    record.update(sidecar or {})
    try:
        sidecar_bytes = (json.dumps(record, indent=1, default=_json_default) + "\n").encode("utf-8")
    except TypeError as exc:
        raise SubmissionError(f"{sidecar_path(path)}: {exc}") from None
    payloads[sidecar_path(path)] = sidecar_bytes
    _write_all_atomically(payloads)
    return path


def output_paths(path: str | Path, task: TaskSpec) -> list[Path]:
    """Every file :func:`write_submission` writes for ``path``: the CSV (a folder gets
    ``task.submission_filename`` or ``submission.csv``), its sidecar and, for zipped tasks, the zip."""
    path = Path(path)
    if path.is_dir():
        path = path / (task.submission_filename or "submission.csv")
    if path.suffix.lower() != ".csv":
        raise SubmissionError(f"{path}: a submission path must end in .csv (its .json sidecar and .zip go beside it)")
    return [path, sidecar_path(path), *([zip_path(path)] if task.zip_submission else [])]


def written_here(path: str | Path) -> bool:
    """Whether the submission files of ``path`` (the CSV, its sidecar, its zip, those that exist)
    are ones :func:`write_submission` wrote and nobody changed since.

    The sidecar ``<stem>.json`` is the mark: a JSON object naming ``path``'s file in
    ``submission`` with its format and SHA-256; the CSV must still have that SHA-256 and a zip
    must be the one the sidecar names, holding the same bytes. Without such a sidecar (the
    labels of the data, a store record, a hand-edited submission) the answer is no.
    """
    path = Path(path)
    try:
        record = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("submission") != path.name or "format" not in record:
        return False
    digest = record.get("sha256")
    try:
        if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            return False
        archive = zip_path(path)
        if archive.exists():
            if record.get("zip") != archive.name:
                return False
            with zipfile.ZipFile(archive) as opened:
                members = opened.infolist()
                if len(members) != 1 or hashlib.sha256(opened.read(members[0])).hexdigest() != digest:
                    return False
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError):
        return False
    return True


# --- truth and scoring ----------------------------------------------------------------------------


def _find_column(columns: Sequence[str], candidates: Sequence[str]) -> str | None:
    for cand in candidates:
        if cand in columns:
            return cand
    lowered = {c.lower(): c for c in columns}
    for cand in candidates:
        if cand.lower() in lowered:
            return lowered[cand.lower()]
    return None


def _truth_indices(values: Sequence[str], classes: Sequence[str], where: str, column: str) -> np.ndarray:
    """Class indices ``(n,)`` of truth labels (names, case-insensitive, or integer indices); blank → -1."""
    lookup = {c.lower(): i for i, c in enumerate(classes)}
    out = np.full(len(values), -1, dtype=np.int64)
    for i, raw in enumerate(values):
        value = str(raw).strip()
        if value == "" or value.lower() in ("nan", "none"):
            continue
        if value.lower() in lookup:
            out[i] = lookup[value.lower()]
        elif value.lstrip("-").isdigit() and 0 <= int(value) < len(classes):
            out[i] = int(value)
        elif value.lstrip("-").isdigit() and int(value) == -1:
            continue
        else:
            raise DataError(
                f"{where}: line {i + 2}: {column} value {value!r} is not a class; allowed: {', '.join(classes)}"
            )
    return out


def read_truth(
    path: str | Path, task: TaskSpec, *, split: str | None = "test"
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Read a truth CSV for scoring: ``({target: (n,) class indices, -1 unknown}, names (n,))``.

    The name column is the task's, ``name``, ``filename`` or ``FileName`` (media
    extensions are stripped from names); a target's column is the target name or its
    submission column. When ``split`` is given and the file has a ``split`` column,
    only the rows of that split are kept. Raises :class:`DataError`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: truth file not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read the truth CSV: {str(exc).strip()}") from None
    columns = list(table.columns)
    name_col = _find_column(columns, (task.name_column, *TRUTH_NAME_COLUMNS))
    if name_col is None:
        raise DataError(f"{path}: no name column; expected one of {', '.join(TRUTH_NAME_COLUMNS)} in {columns}")
    if split is not None and "split" in columns:
        table = table[table["split"] == split]
        if table.empty:
            raise DataError(f"{path}: no rows with split == {split!r}")
    labels: dict[str, np.ndarray] = {}
    for target in task.target_names:
        column = _find_column(columns, (target, task.column_for(target)))
        if column is None:
            raise DataError(
                f"{path}: no column for target {target!r}; expected {target!r} or {task.column_for(target)!r}"
            )
        labels[target] = _truth_indices(table[column].tolist(), task.target(target).classes, str(path), column)
    names = [strip_extension(str(n).strip()) for n in table[name_col]]
    return labels, names


def score_submission(
    sub_path: str | Path | pd.DataFrame, truth_path: str | Path, task: TaskSpec, *, split: str | None = "test"
) -> dict[str, float | int]:
    """Score a submission on the truth file's names: ``{target: metric, ..., "combined": ..., "rows": n}``.

    Rows whose truth label is unknown are ignored by each target's metric. Every truth
    name must be in the submission (extra submission names, such as a candidate pool,
    are ignored). ``split`` as in :func:`read_truth`.
    """
    frame, where = _parse(sub_path, task)
    truth, names = read_truth(truth_path, task, split=split)
    position = {name: i for i, name in enumerate(frame[task.name_column])}
    absent = [n for n in names if n not in position]
    if absent:
        raise SubmissionError(
            f"{where}: {len(absent)} of the {len(names)} names in {truth_path} are missing, e.g. {_first(absent)}"
        )
    rows = np.array([position[n] for n in names], dtype=np.int64)
    scores: dict[str, float | int] = {}
    for target in task.target_names:
        lookup = {text: i for i, text in enumerate(label_text(task, target))}
        predicted = np.array([lookup[v] for v in frame[task.column_for(target)]], dtype=np.int64)[rows]
        scores[target] = float(task.target(target).score(truth[target], predicted))
    scores["combined"] = float(task.combined(scores))
    scores["rows"] = len(names)
    return scores
