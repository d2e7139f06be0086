"""Blending the stored runs of every target: each method fitted on the out-of-fold rows and scored
in-sample and nested, the choice between methods (on nested scores only), and the test
probabilities of the chosen blend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mer_ensemble.blend.runs import check_blend_config, check_compatible, select_runs
from mer_ensemble.blend.storage import StorageFailure, blend_study_name, storage_errors, storage_failure
from mer_ensemble.config import BlendConfig
from mer_ensemble.errors import BlendError
from mer_ensemble.experiment import Experiment
from mer_ensemble.store import RunRecord

__all__ = ["NESTED_ESTIMATE", "BlendResult", "MethodScore", "TargetBlend", "blend_runs"]


#: how every score of a blend is estimated (written into sidecars and reports)
NESTED_ESTIMATE = "nested CV: blender fitted on K-1 folds' OOF rows, scored on the held-out fold"


@dataclass
class MethodScore:
    """One blending method on one target."""

    method: str
    in_sample: float
    nested: float
    nested_folds: list[float]
    description: dict[str, Any]


@dataclass
class TargetBlend:
    """The outcome for one target: scores of every method, the chosen one, test probabilities."""

    target: str
    runs: list[str]
    methods: list[MethodScore]
    chosen: str
    test_proba: np.ndarray
    oof_nested_proba: np.ndarray | None = None
    y: np.ndarray | None = None
    #: method -> ``(n_test, C)`` test probabilities of that method fitted on all OOF rows
    test_by_method: dict[str, np.ndarray] = field(default_factory=dict)
    #: how ``chosen`` was picked (rule, members, paired differences); see :mod:`mer_ensemble.ensemble.choice`
    choice: Any = None
    #: method -> why it could not run with these folds (absent from ``methods`` and the choice)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class BlendResult:
    """Every target's blend and the task's combined score of the chosen methods (nested and in-sample)."""

    targets: dict[str, TargetBlend] = field(default_factory=dict)
    combined_nested: float = 0.0
    combined_in_sample: float = 0.0

    def test_labels(self) -> dict[str, np.ndarray]:
        return {t: b.test_proba.argmax(1) for t, b in self.targets.items()}


def blend_runs(
    exp: Experiment,
    records: list[RunRecord] | None = None,
    *,
    methods: list[str] | None = None,
    choose: str | None = None,
) -> BlendResult:
    """Blend every target of ``exp`` from its stored runs (or ``records``; without ``blend.runs``,
    those of the pseudo-label round kept, :func:`~mer_ensemble.pseudo.round_records`); score every
    method in-sample and nested; keep each method's test probabilities and the chosen one's."""
    from mer_ensemble.store import load_runs, no_runs_error, require_runs

    settings = exp.config.blend.model_copy(update={k: v for k, v in (("methods", methods), ("choose", choose)) if v})
    check_blend_config(settings)
    if records is None:
        from mer_ensemble.pseudo import round_records

        records = load_runs(exp.workdir, require_runs(exp.workdir))
        if settings.runs is None:
            records = round_records(exp.workdir, records)[0]
    if not records:
        raise no_runs_error(exp.workdir)
    storage = settings.storage or f"sqlite:///{(exp.workdir / 'optuna.db').resolve()}"
    result = BlendResult()
    for target in exp.dataset.task.target_names:
        patterns = settings.runs.get(target) if isinstance(settings.runs, dict) else settings.runs
        runs = select_runs(records, patterns, target)
        check_compatible(runs, target, exp.dataset)
        result.targets[target] = _blend_target(exp, target, runs, settings, storage)
    chosen = {t: next(m for m in b.methods if m.method == b.chosen) for t, b in result.targets.items()}
    result.combined_nested = exp.dataset.task.combined({t: m.nested for t, m in chosen.items()})
    result.combined_in_sample = exp.dataset.task.combined({t: m.in_sample for t, m in chosen.items()})
    return result


@dataclass
class _Scored:
    """Every method that could run on one target: scores, nested OOF ``(n, C)`` and test ``(n_test, C)``
    probabilities, the final blenders (fitted on all OOF rows), and why the others could not run."""

    scores: list[MethodScore] = field(default_factory=list)
    nested: dict[str, np.ndarray] = field(default_factory=dict)
    test: dict[str, np.ndarray] = field(default_factory=dict)
    finals: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _blend_target(exp: Experiment, target: str, runs: list[RunRecord], settings: BlendConfig,
                  storage: str) -> TargetBlend:
    """Score every method on ``target``'s OOF rows with a known label, choose, and blend its test rows."""
    from mer_ensemble.ensemble import FitContext
    from mer_ensemble.ensemble.choice import TIES, choose_blend

    score = exp.dataset.task.target(target).score
    y_all = exp.dataset.labels[target][runs[0].rows]
    known = y_all >= 0
    y, folds = y_all[known], runs[0].fold[known]
    oof = np.stack([r.oof[target][known] for r in runs])  # (n_runs, n, C)
    context = FitContext(storage=storage, study_name=blend_study_name(exp, target, oof, y), repeatable=True)
    scored = _score_methods(settings, oof, y, folds, score, context, storage, [r.key for r in runs])
    if not scored.scores:
        detail = "; ".join(f"{m}: {why}" for m, why in scored.skipped.items())
        raise BlendError(f"blend ({target}): no method could run with the folds given ({detail})")
    if settings.choose in scored.skipped:
        raise BlendError(f"blend.choose: {settings.choose} cannot run on {target}: {scored.skipped[settings.choose]}")
    test = np.stack([r.test[target] for r in runs])
    scored.test = {name: final.predict_proba(test) for name, final in scored.finals.items()}
    choice = choose_blend({m.method: m.nested for m in scored.scores},
                          {m.method: m.nested_folds for m in scored.scores}, rule=settings.choose, n_se=settings.tie_se)
    if choice.averaged:  # a blend of the blends that cannot be told apart
        _add_ties(scored, choice.members, oof, y, folds, score, [r.key for r in runs])
    chosen = TIES if choice.averaged else choice.members[0]
    return TargetBlend(target=target, runs=[r.key for r in runs], methods=scored.scores, chosen=chosen,
                       test_proba=scored.test[chosen], oof_nested_proba=scored.nested[chosen], y=y,
                       test_by_method=scored.test, choice=choice, skipped=scored.skipped)


def _score_methods(settings: BlendConfig, oof: np.ndarray, y: np.ndarray, folds: np.ndarray, score: Any,
                   context: Any, storage: str, run_keys: list[str]) -> _Scored:
    """Every method of ``settings.methods`` fitted and scored (:func:`_score_method`); a method that
    cannot run with these folds is recorded as skipped (a storage failure stops the blend)."""
    from mer_ensemble.ensemble import make_blender

    def make(name: str) -> Any:
        return make_blender(name, class_bias=settings.class_bias, **settings.params.get(name, {}))

    scored = _Scored()
    for name in settings.methods:
        try:
            final, nested_proba, method_score = _score_method(make, name, oof, y, folds, score, context, storage)
        except StorageFailure:
            raise
        except BlendError as exc:  # e.g. stacking with 2 folds: its nested fits see one fold id
            scored.skipped[name] = str(exc)
            continue
        scored.nested[name], scored.finals[name] = nested_proba, final
        method_score.description["runs"] = list(run_keys)
        scored.scores.append(method_score)
    return scored


def _add_ties(scored: _Scored, members: list[str], oof: np.ndarray, y: np.ndarray, folds: np.ndarray, score: Any,
              run_keys: list[str]) -> None:
    """Add the blend of ``members`` (the mean of their predictions) as the method :data:`TIES`."""
    from mer_ensemble.ensemble.choice import TIES

    scored.nested[TIES] = np.mean([scored.nested[m] for m in members], axis=0)
    scored.test[TIES] = np.mean([scored.test[m] for m in members], axis=0)
    in_sample = np.mean([scored.finals[m].predict_proba(oof) for m in members], axis=0)
    labels = scored.nested[TIES].argmax(1)
    per_fold = _fold_scores(score, y, labels, folds)
    desc = {"blender": TIES, "members": members, "runs": list(run_keys)}
    scored.scores.append(MethodScore(TIES, float(score(y, in_sample.argmax(1))), float(score(y, labels)), per_fold,
                                     desc))


def _score_method(
    make: Any, name: str, oof: np.ndarray, y: np.ndarray, folds: np.ndarray, score: Any, context: Any, storage: str
) -> tuple[Any, np.ndarray, MethodScore]:
    """One method fitted on all OOF rows ``oof`` ``(n_runs, n, C)`` and scored nested; its
    nested probabilities ``(n, C)``. A :class:`BlendError` means the method cannot run here."""
    from mer_ensemble.ensemble import nested_oof_proba

    nested_proba = nested_oof_proba(lambda: make(name), oof, y, folds, score)
    labels = nested_proba.argmax(1)
    per_fold = _fold_scores(score, y, labels, folds)
    try:
        final = make(name).fit(oof, y, folds=folds, score_fn=score, context=context)
    except storage_errors() as exc:
        raise storage_failure(exc, storage, name) from None
    ins = float(score(y, final.predict(oof)))
    return final, nested_proba, MethodScore(name, ins, float(score(y, labels)), per_fold, final.describe())


def _fold_scores(score: Any, y: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> list[float]:
    """``score`` of ``labels`` against ``y`` on each fold's rows, in fold-id order."""
    return [float(score(y[folds == k], labels[folds == k])) for k in np.unique(folds)]
