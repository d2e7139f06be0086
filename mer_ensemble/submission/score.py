"""Scoring a submission on a truth CSV (for the final table; training never reads test labels)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mer_ensemble.errors import DataError, SubmissionError
from mer_ensemble.names import strip_extension
from mer_ensemble.submission.format import first_items, label_text
from mer_ensemble.submission.validate import parse_with_source
from mer_ensemble.tasks import TaskSpec

__all__ = ["TRUTH_NAME_COLUMNS", "read_truth", "score_submission"]

#: columns accepted as the name column of a truth file, besides the task's own
TRUTH_NAME_COLUMNS = ("name", "filename", "FileName")


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
    frame, where = parse_with_source(sub_path, task)
    truth, names = read_truth(truth_path, task, split=split)
    position = {name: i for i, name in enumerate(frame[task.name_column])}
    absent = [n for n in names if n not in position]
    if absent:
        raise SubmissionError(
            f"{where}: {len(absent)} of the {len(names)} names in {truth_path} are missing, e.g. {first_items(absent)}"
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
