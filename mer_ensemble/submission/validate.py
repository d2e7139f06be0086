"""Reading a submission (a CSV, its zip, or a frame) and checking it against the task's format
and the test set; every failure is one line naming the file, line, column or value."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from mer_ensemble.errors import SubmissionError
from mer_ensemble.names import strip_extension
from mer_ensemble.submission.archive import submission_bytes
from mer_ensemble.submission.format import SHOW, expected_header, first_items, label_text
from mer_ensemble.tasks import TaskSpec

__all__ = ["parse_submission", "parse_with_source", "validate_submission"]


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
    where, data = submission_bytes(path, member)
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


def parse_with_source(source: str | Path | pd.DataFrame, task: TaskSpec) -> tuple[pd.DataFrame, str]:
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
            f"{', '.join(map(str, lines[:SHOW]))}; expected each name once"
        )
    return pd.DataFrame(rows, columns=table.header, dtype=str), where


def parse_submission(source: str | Path | pd.DataFrame, task: TaskSpec) -> pd.DataFrame:
    """Read a submission and check its format: header, non-empty unique names, known labels.

    Returns the frame (all columns as ``str``). Does not compare against a test set;
    see :func:`validate_submission`. Raises :class:`SubmissionError`.
    """
    return parse_with_source(source, task)[0]


def _extension_hint(extra: list[str], missing: set[str]) -> str:
    stripped = {strip_extension(e) for e in extra}
    return " (the names carry a file extension; write them without it)" if stripped & missing else ""


def validate_submission(source: str | Path | pd.DataFrame, task: TaskSpec, test_names: Sequence[str]) -> pd.DataFrame:
    """Check a submission file (or frame) against ``task``'s format and the test set ``test_names``.

    Checks, each failing with a one-line :class:`SubmissionError`: empty file, header,
    field counts, empty or duplicate names, labels outside the class list, test names
    missing from the file, names in the file that are not test names. Returns the frame.
    """
    frame, where = parse_with_source(source, task)
    expected = [str(n) for n in test_names]
    expected_set = set(expected)
    present = frame[task.name_column].tolist()
    present_set = set(present)
    missing = [n for n in expected if n not in present_set]
    extra = [n for n in present if n not in expected_set]
    if missing:
        raise SubmissionError(
            f"{where}: {len(missing)} of {len(expected_set)} test names missing, e.g. {first_items(missing)}"
            + _extension_hint(extra, set(missing))
        )
    if extra:
        raise SubmissionError(
            f"{where}: {len(extra)} name(s) not in the test set, e.g. {first_items(extra)}; expected only the "
            f"{len(expected_set)} test names"
        )
    return frame
