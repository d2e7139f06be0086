"""The blend layer: stored runs → per-target blenders → honest scores → a saved blend.

Every blender is fitted on out-of-fold probabilities only. Each method is scored
twice: in-sample (fitted and scored on the same OOF rows; optimistic) and nested
(for each fold, fitted on the other folds' OOF rows and scored on that fold). The
choice between methods reads the nested scores only: ``blend.choose: auto`` averages the
methods whose paired per-fold nested differences to the best are within noise
(:mod:`mer_ensemble.ensemble.choice`), so it does not follow differences smaller than the
fold-to-fold noise.

:func:`blend_runs` computes a :class:`BlendResult`; :func:`save_blend` writes what a
blend leaves behind — the validated submission with its JSON sidecar, and
``<workdir>/blend/latest.json`` + ``latest.npz``, which :func:`load_latest_blend` (and the
report) read back.

The modules, in the order a blend runs through them: :mod:`~mer_ensemble.blend.runs` (which
stored runs, and whether they can be blended), :mod:`~mer_ensemble.blend.score` (every method
fitted and scored per target, the choice), :mod:`~mer_ensemble.blend.storage` (the Optuna
storage of the final fits), :mod:`~mer_ensemble.blend.save` (what a blend leaves behind).
"""

from __future__ import annotations

from mer_ensemble.blend.runs import check_blend_config, check_compatible, select_runs, unfinished_runs
from mer_ensemble.blend.save import LatestBlend, check_out, load_latest_blend, save_blend, submission_task
from mer_ensemble.blend.score import NESTED_ESTIMATE, BlendResult, MethodScore, TargetBlend, blend_runs

__all__ = [
    "NESTED_ESTIMATE",
    "BlendResult",
    "LatestBlend",
    "MethodScore",
    "TargetBlend",
    "blend_runs",
    "check_blend_config",
    "check_compatible",
    "check_out",
    "load_latest_blend",
    "save_blend",
    "select_runs",
    "submission_task",
    "unfinished_runs",
]
