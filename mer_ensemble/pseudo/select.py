"""Which pool rows get a pseudo-label in a round: the runs' fold models agree on a class with enough
confidence; class caps keep the most confident rows per class; fold ``k``'s rows come from models that
never saw fold ``k``'s validation rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mer_ensemble.config import Config
from mer_ensemble.data.dataset import Dataset
from mer_ensemble.errors import ConfigError, DataError
from mer_ensemble.io import atomic_save_npz
from mer_ensemble.store import RunRecord


@dataclass
class Selection:
    """Pseudo-labels of one target for one candidate set.

    ``labels`` ``(n,)`` class index or -1 (not taken); ``agree_rate`` the share of
    candidate rows on which the required number of runs agreed.
    """

    labels: np.ndarray
    confidence: np.ndarray
    agree_rate: float


def class_caps(max_per_class: float | None, labelled_counts: np.ndarray) -> np.ndarray | None:
    """Per-class cap on rows added per round: ``< 1`` is relative to the labelled count, else absolute."""
    if max_per_class is None:
        return None
    if max_per_class < 1:
        return np.floor(labelled_counts * max_per_class).astype(np.int64)
    return np.full(len(labelled_counts), int(max_per_class), dtype=np.int64)


def select_agreed(
    probas: Sequence[np.ndarray],
    *,
    threshold: float = 0.9,
    min_agree: int | None = None,
    caps: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
) -> Selection:
    """Select rows on which the runs agree.

    ``probas``: ``R`` arrays ``(n, C)``. A row is taken when at least ``min_agree``
    runs (default: all) predict the row's majority class and the mean probability of
    that class is ``>= threshold``; ``allowed`` ``(n,)`` bool restricts the rows;
    ``caps`` ``(C,)`` keeps only the most confident rows of each class.
    """
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in probas])
    n_runs, n_rows, n_classes = stacked.shape
    need = n_runs if min_agree is None else min_agree
    if need > n_runs:
        raise ConfigError(f"pseudo.min_agree: {need} runs must agree but only {n_runs} run(s) are selected")
    votes = stacked.argmax(axis=2)  # (R, n)
    counts = np.stack([(votes == c).sum(axis=0) for c in range(n_classes)], axis=1)  # (n, C)
    mean = stacked.mean(axis=0)
    majority = np.where(counts.max(1, keepdims=True) == counts, mean, -1).argmax(1)
    agree = counts[np.arange(n_rows), majority] >= need
    confidence = mean[np.arange(n_rows), majority]
    take = agree & (confidence >= threshold)
    if allowed is not None:
        take &= allowed
        agree_rate = float(agree[allowed].mean()) if allowed.any() else 0.0
    else:
        agree_rate = float(agree.mean()) if n_rows else 0.0
    labels = np.where(take, majority, -1)
    if caps is not None:
        for c in range(n_classes):
            rows = np.flatnonzero(labels == c)
            if len(rows) > caps[c]:
                keep = rows[np.argsort(-confidence[rows], kind="stable")[: caps[c]]]
                drop = np.setdiff1d(rows, keep)
                labels[drop] = -1
    return Selection(labels=labels, confidence=confidence, agree_rate=agree_rate)


def _candidate_rows(cfg: Config, ds: Dataset, records: list[RunRecord]) -> tuple[np.ndarray, str]:
    """Dataset rows that may receive pseudo-labels, and whether test rows are used."""
    rows = records[0].pool_rows
    if cfg.pseudo.use_test:
        rows = np.concatenate([rows, records[0].test_rows])
    return rows, "pool+test" if cfg.pseudo.use_test else "pool"


def _fold_probas(record: RunRecord, target: str, k: int, use_test: bool) -> np.ndarray:
    parts = [record.pool_by_fold[target][k]]
    if use_test:
        parts.append(record.extra[f"test_by_fold/{target}"][k])
    return np.concatenate(parts)


def make_pseudo_file(
    cfg: Config, ds: Dataset, records: list[RunRecord], path: Path, *, per_fold: bool = True
) -> tuple[Path, dict]:
    """Select pseudo-labels per fold and target from ``records``; write them to ``path`` (npz).

    The file holds ``rows_<k>`` (dataset rows added to fold ``k``'s training part)
    and ``label_<k>/<target>`` (class index, -1 where that target got no label).
    ``per_fold=False`` uses the fold-mean pool predictions for every fold — this
    leaks validation labels into training and exists only to demonstrate the leak.
    """
    p = cfg.pseudo
    rows, _ = _candidate_rows(cfg, ds, records)
    if len(rows) == 0:
        raise DataError("pseudo-labelling needs an unlabelled pool; the data has none (add a pool list)")
    allowed = np.ones(len(rows), dtype=bool)
    if p.use_candidates and ds.candidates is not None:
        allowed = ds.candidates[rows].astype(bool)
    n_folds = int(records[0].manifest["n_folds"])
    arrays: dict[str, np.ndarray] = {}
    info: dict = {"added": {}, "agree_rate": {}, "labels_by_fold": {}}
    chosen_labels: dict[str, list[np.ndarray]] = {t: [] for t in ds.task.target_names}
    for k in range(n_folds):
        keep = np.zeros(len(rows), dtype=bool)
        labels_k = {}
        for target in ds.task.target_names:
            runs = [r for r in records if target in r.targets]
            if not runs:
                labels_k[target] = np.full(len(rows), -1)
                continue
            counts = np.bincount(ds.labels[target][ds.labelled_rows][ds.labels[target][ds.labelled_rows] >= 0],
                                 minlength=ds.task.target(target).n_classes)
            if per_fold:
                probas = [_fold_probas(r, target, k, p.use_test) for r in runs]
            else:
                probas = [np.concatenate([r.pool[target]] + ([r.test[target]] if p.use_test else [])) for r in runs]
            sel = select_agreed(probas, threshold=p.threshold, min_agree=p.min_agree,
                                caps=class_caps(p.max_per_class, counts), allowed=allowed)
            labels_k[target] = sel.labels
            keep |= sel.labels >= 0
            info["agree_rate"].setdefault(target, []).append(sel.agree_rate)
            chosen_labels[target].append(sel.labels)
        arrays[f"rows_{k}"] = rows[keep]
        for target, labels in labels_k.items():
            arrays[f"label_{k}/{target}"] = labels[keep].astype(np.int64)
    atomic_save_npz(path, **arrays)
    for target in ds.task.target_names:
        if not chosen_labels[target]:
            continue
        classes = ds.task.target(target).classes
        stacked = np.stack(chosen_labels[target])  # (K, n_rows)
        info["added"][target] = {c: float((stacked == i).sum(1).mean()) for i, c in enumerate(classes)}
        info["agree_rate"][target] = float(np.mean(info["agree_rate"][target]))
        info["labels_by_fold"][target] = stacked
    info["rows"] = rows
    return path, info


