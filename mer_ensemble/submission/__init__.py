"""Submission files per competition: writers that validate before writing, validators, and scoring.

Formats (``TaskSpec.submission``):

- ``mer2024``: CSV ``name,discrete``, the class as its lowercase name.
- ``meiju``: CSV ``filename,emo_pred,int_pred`` with label names, zipped as ``submission.csv``.
- ``generic``: CSV ``name,<target>...`` with label names.

The header is ``[task.name_column] + [task.column_for(t) for t in task.target_names]``.
Every error is one line naming the file, the column, line or value, and what was expected.

The modules, in the order data flows through them: :mod:`~mer_ensemble.submission.format`
(header and label text of a task), :mod:`~mer_ensemble.submission.validate` (reading a CSV,
zip or frame and checking it), :mod:`~mer_ensemble.submission.write` (labels → CSV, sidecar and
zip, all or nothing), :mod:`~mer_ensemble.submission.archive` (the zip inside and beside),
:mod:`~mer_ensemble.submission.score` (truth files and scores).
"""

from __future__ import annotations

from mer_ensemble.names import MEDIA_EXTENSIONS
from mer_ensemble.submission.archive import zip_path
from mer_ensemble.submission.format import expected_header, label_text
from mer_ensemble.submission.score import TRUTH_NAME_COLUMNS, read_truth, score_submission
from mer_ensemble.submission.validate import parse_submission, validate_submission
from mer_ensemble.submission.write import output_paths, sidecar_path, write_submission, written_here

__all__ = [
    "MEDIA_EXTENSIONS",
    "TRUTH_NAME_COLUMNS",
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
