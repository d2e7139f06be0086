"""A readable summary of a dataset, for ``mer-ensemble check``."""

from __future__ import annotations

import numpy as np

from mer_ensemble.data.dataset import SPLITS, Dataset
from mer_ensemble.data.folds import Folds
from mer_ensemble.data.raw import describe_missing

__all__ = ["dataset_problems", "summarise"]


def dataset_problems(ds: Dataset, folds: Folds | None = None) -> list[str]:
    """Soft problems worth a warning (hard ones already raised while loading)."""
    problems = []
    rows = ds.labelled_rows
    for target in ds.task.targets:
        counts = np.bincount(
            ds.labels[target.name][rows][ds.labels[target.name][rows] >= 0], minlength=target.n_classes
        )
        for cls, n in zip(target.classes, counts, strict=False):
            if n == 0:
                problems.append(f"target {target.name}: class {cls!r} has no labelled row")
            elif folds is not None and n < folds.n_folds:
                problems.append(f"target {target.name}: class {cls!r} has {n} rows, fewer than {folds.n_folds} folds")
    for name, block in ds.features.items():
        pooled = block.pooled()
        std = np.asarray(pooled[rows]).std(axis=0)
        if (std == 0).all():
            problems.append(f"feature {name}: constant over the labelled rows")
    if len(ds.pool_rows) == 0:
        problems.append(
            "no unlabelled pool: no pool list was read, so pseudo-labelling has nothing to work on; "
            "set data.pool_file to the unlabelled list (MEIJU Track 1: NoAnnotation/transcription.csv; "
            "MER2024: the unlabelled names)"
        )
    return problems


def summarise(ds: Dataset, folds: Folds | None = None) -> str:
    """Rows per split, class counts per target, features with dims and level."""
    lines = [f"task {ds.task.name}  •  data {ds.root}  •  fingerprint {ds.fingerprint}"]
    counts = {s: int((ds.split == s).sum()) for s in SPLITS}
    lines.append(
        "rows: " + ", ".join(f"{s} {n}" for s, n in counts.items()) + f"  (labelled for CV: {len(ds.labelled_rows)})"
    )
    rows = ds.labelled_rows
    for target in ds.task.targets:
        y = ds.labels[target.name][rows]
        c = np.bincount(y[y >= 0], minlength=target.n_classes)
        parts = ", ".join(f"{cls} {n}" for cls, n in zip(target.classes, c, strict=False))
        unknown = int((y < 0).sum())
        extra = f", unknown {unknown}" if unknown else ""
        lines.append(f"target {target.name} [{target.metric}]: {parts}{extra}")
    for modality, names in ds.modalities.items():
        for name in names:
            b = ds.features[name]
            if b.level == "utt":
                lines.append(f"feature {name} ({modality}): utterance level, D={b.dim}")
            else:
                lens = b.lengths()
                lines.append(
                    f"feature {name} ({modality}): frame level, D={b.dim}, frames min {lens.min()} "
                    f"median {int(np.median(lens))} max {lens.max()}"
                )
    for kind, values in ds.raw.items():
        lines.append(describe_missing(kind, values, ds.names) or f"raw {kind}: every row ({len(values)}) has it")
    if ds.groups is not None:
        lines.append(f"groups: {len(set(ds.groups[rows]))} in the labelled rows")
    if ds.candidates is not None:
        lines.append(f"candidate list: {int(ds.candidates.sum())} names")
    if folds is not None:
        sizes = np.bincount(folds.fold, minlength=folds.n_folds)
        lines.append(f"folds: {folds.n_folds} (hash {folds.hash}), sizes {sizes.tolist()}")
    return "\n".join(lines)
