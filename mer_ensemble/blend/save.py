"""What a blend leaves behind: the validated submission with its sidecar (and zip), and
``<workdir>/blend/latest.json`` + ``latest.npz`` that the report reads back; the check that
refuses an ``--out`` which would overwrite what it should not."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.blend.score import NESTED_ESTIMATE, BlendResult
from mer_ensemble.errors import StoreError
from mer_ensemble.experiment import Experiment
from mer_ensemble.io import open_npz, read_json
from mer_ensemble.tasks import TaskSpec

__all__ = ["LatestBlend", "check_out", "load_latest_blend", "save_blend", "submission_task"]


def _sidecar(exp: Experiment, result: BlendResult, stamp: str) -> dict[str, Any]:
    return {
        "config": exp.config.source,
        "workdir": str(exp.workdir),
        "task": exp.task.name,
        "created": stamp,
        "estimate": NESTED_ESTIMATE,
        "combined_nested": result.combined_nested,
        "combined_in_sample": result.combined_in_sample,
        "targets": {
            t: {
                "method": tb.chosen,
                "runs": tb.runs,
                "chosen": next(m.description for m in tb.methods if m.method == tb.chosen),
                "rule": None if tb.choice is None else tb.choice.text(),
                "skipped": dict(tb.skipped),
                "paired_differences": None if tb.choice is None else {
                    e.method: {"diff": e.diff, "se": e.se, "tied": e.tied} for e in tb.choice.evidence},
                "scores": {
                    m.method: {"in_sample": m.in_sample, "nested": m.nested, "nested_folds": m.nested_folds}
                    for m in tb.methods
                },
            }
            for t, tb in result.targets.items()
        },
    }


def submission_task(exp: Experiment) -> TaskSpec:
    """The task as the submission is written: with ``blend.zip`` a task that is not zipped anyway
    also gets ``<stem>.zip`` holding the CSV as ``submission.csv``."""
    task = exp.task
    if exp.config.blend.zip and not task.zip_submission:
        from dataclasses import replace

        task = replace(task, zip_submission=True, submission_filename=task.submission_filename or "submission.csv")
    return task


def check_out(exp: Experiment, out: str | Path, *, force: bool = False) -> None:
    """Refuse a submission path whose CSV, sidecar or zip would land in the workdir's own files or
    replace a file that is not a submission this toolkit wrote (:mod:`mer_ensemble.outputs`),
    unless ``force``: a :class:`~mer_ensemble.errors.ConfigError` naming the file."""
    from mer_ensemble.outputs import check_output
    from mer_ensemble.submission import output_paths, written_here

    paths = output_paths(out, submission_task(exp))
    check_output("--out", paths, workdir=exp.workdir, ours=lambda _p: written_here(paths[0]), force=force,
                 what="a submission mer-ensemble wrote (no unchanged sidecar records it)",
                 data_root=exp.config.resolve_path(exp.config.data.root))


def save_blend(exp: Experiment, result: BlendResult, out: str | Path | None = None, *, force: bool = False) -> Path:
    """Write the blend: the validated submission (default ``submissions/<config>-<methods>-<time>.csv``)
    with its sidecar (and zip where the task wants one), then ``<workdir>/blend/latest.json``
    and ``latest.npz`` (nested-CV probabilities, labels and test probabilities per target).
    Returns the submission path. Nothing is written when the submission fails validation, or
    when ``out`` is refused by :func:`check_out` (``force`` lifts that)."""
    from mer_ensemble.io import atomic_save_npz, atomic_write_json
    from mer_ensemble.submission import write_submission

    stamp = time.strftime("%Y%m%d-%H%M%S")
    label = "+".join(sorted({tb.chosen for tb in result.targets.values()}))
    path = Path(out) if out else Path("submissions") / f"{exp.stem}-{label}-{stamp}.csv"
    check_out(exp, path, force=force)
    sidecar = _sidecar(exp, result, stamp)
    names = exp.dataset.names[exp.dataset.test_rows]
    written = write_submission(result.test_labels(), names, submission_task(exp), path, sidecar=sidecar)
    folder = exp.workdir / "blend"
    atomic_save_npz(
        folder / "latest.npz",
        **{f"nested/{t}": tb.oof_nested_proba for t, tb in result.targets.items()},
        **{f"y/{t}": tb.y for t, tb in result.targets.items()},
        **{f"test/{t}": tb.test_proba.astype(np.float32) for t, tb in result.targets.items()},
    )
    atomic_write_json(folder / "latest.json", {**sidecar, "submission": str(written)})
    return written


@dataclass
class LatestBlend:
    """What :func:`save_blend` left in ``<workdir>/blend/``.

    ``summary``: ``latest.json`` (the sidecar plus the submission path); ``nested[t]``
    ``(n_known, C)`` nested-CV blended OOF probabilities of the chosen blend; ``y[t]``
    ``(n_known,)`` the matching labels; ``test[t]`` ``(n_test, C)`` its test probabilities.
    """

    summary: dict[str, Any]
    nested: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    test: dict[str, np.ndarray]


def load_latest_blend(workdir: str | Path) -> LatestBlend | None:
    """The last blend saved in ``workdir`` (None when there is none)."""

    folder = Path(workdir) / "blend"
    json_path, npz_path = folder / "latest.json", folder / "latest.npz"
    if not json_path.is_file() or not npz_path.is_file():
        return None
    parts: dict[str, dict[str, np.ndarray]] = {"nested": {}, "y": {}, "test": {}}
    with open_npz(npz_path, StoreError) as npz:
        for name in npz.files:
            kind, _, target = name.partition("/")
            if kind in parts:
                parts[kind][target] = npz[name]
    summary = read_json(json_path, StoreError)
    return LatestBlend(summary, parts["nested"], parts["y"], parts["test"])
