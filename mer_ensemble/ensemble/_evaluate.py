"""Honest estimates of a blend's score: nested over the runs' folds, and the optimistic in-sample one.

A blender tuned on the same out-of-fold rows it is scored on overfits them (more so
with many runs, many trials, or a meta-model). :func:`nested_score` fits a fresh
blender for each fold ``k`` on the other folds' rows only and scores it on fold
``k``, so every scored prediction comes from a blender that never saw that row.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mer_ensemble.ensemble._base import Blender, ProbasLike, ScoreFn, check_fit_inputs
from mer_ensemble.ensemble._scoring import resolve_score_fn
from mer_ensemble.errors import BlendError
from mer_ensemble.metrics import weighted_f1

__all__ = ["BlenderFactory", "in_sample_score", "nested_oof_proba", "nested_score"]

#: a zero-argument callable returning a fresh, unfitted blender (or a registry name)
BlenderFactory = Callable[[], Blender] | str


def _factory(make_blender: BlenderFactory) -> Callable[[], Blender]:
    if isinstance(make_blender, str):
        from mer_ensemble.ensemble._registry import make_blender as from_registry

        name = make_blender
        return lambda: from_registry(name)
    return make_blender


def nested_oof_proba(
    make_blender: BlenderFactory,
    probas: ProbasLike,
    y: np.ndarray,
    folds: np.ndarray,
    score_fn: ScoreFn | str = weighted_f1,
) -> np.ndarray:
    """Blended probabilities ``(n, C)`` where row ``i`` comes from a blender fitted without ``i``'s fold.

    For each fold ``k``: a fresh blender is fitted on the other folds' rows of
    ``probas`` ``(R, n, C)`` (with their ``folds``, so a stacker's inner CV runs over
    the remaining folds only) and predicts fold ``k``'s rows.
    """
    stacked, y, folds = check_fit_inputs(probas, y, folds)
    if folds is None:
        raise BlendError("nested score needs the fold id of every row (folds=...)")
    fold_ids = np.unique(folds)
    if len(fold_ids) < 2:
        raise BlendError(f"nested score: folds hold {len(fold_ids)} distinct fold id(s); need at least 2")
    new_blender = _factory(make_blender)
    score_fn = resolve_score_fn(score_fn)
    out = np.zeros(stacked.shape[1:])
    for fold in fold_ids:
        held = folds == fold
        blender = new_blender()
        blender.fit(stacked[:, ~held], y[~held], folds=folds[~held], score_fn=score_fn)
        out[held] = blender.predict_proba(stacked[:, held])
    return out


def nested_score(
    make_blender: BlenderFactory,
    probas: ProbasLike,
    y: np.ndarray,
    folds: np.ndarray,
    score_fn: ScoreFn | str = weighted_f1,
) -> tuple[float, list[float]]:
    """Out-of-sample score of a blending recipe: ``(pooled score over all rows, [score of each fold])``.

    Folds are listed in sorted fold-id order. See :func:`nested_oof_proba`.
    """
    score_fn = resolve_score_fn(score_fn)
    proba = nested_oof_proba(make_blender, probas, y, folds, score_fn)
    y = np.asarray(y)
    folds = np.asarray(folds)
    labels = proba.argmax(axis=1)
    per_fold = [float(score_fn(y[folds == k], labels[folds == k])) for k in np.unique(folds)]
    return float(score_fn(y, labels)), per_fold


def in_sample_score(
    make_blender: BlenderFactory | Blender,
    probas: ProbasLike,
    y: np.ndarray,
    folds: np.ndarray | None = None,
    score_fn: ScoreFn | str = weighted_f1,
) -> float:
    """Score of a blender fitted on all rows and scored on the same rows (optimistic; for comparison)."""
    score_fn = resolve_score_fn(score_fn)
    stacked, y, folds = check_fit_inputs(probas, y, folds)
    blender = make_blender if isinstance(make_blender, Blender) else _factory(make_blender)()
    blender.fit(stacked, y, folds=folds, score_fn=score_fn)
    return float(score_fn(y, blender.predict(stacked)))
