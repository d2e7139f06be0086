"""The blend pipeline: stored runs → per-target blenders → honest scores → test labels.

Every blender is fitted on out-of-fold probabilities only. Each method is scored
twice: in-sample (fitted and scored on the same OOF rows; optimistic) and nested
(for each fold, fitted on the other folds' OOF rows and scored on that fold). The
method chosen by ``blend.choose: auto`` is the one with the best nested score, so
the choice itself does not look at the rows it is judged on twice.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.config import Config
from mer_ensemble.data.dataset import Dataset
from mer_ensemble.errors import BlendError
from mer_ensemble.store import RunRecord

__all__ = ["BlendResult", "MethodScore", "blend_runs", "check_compatible", "select_runs"]


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


@dataclass
class BlendResult:
    targets: dict[str, TargetBlend] = field(default_factory=dict)
    combined_nested: float = 0.0
    combined_in_sample: float = 0.0

    def test_labels(self) -> dict[str, np.ndarray]:
        return {t: b.test_proba.argmax(1) for t, b in self.targets.items()}


def select_runs(records: list[RunRecord], patterns: list[str] | None, target: str) -> list[RunRecord]:
    """Runs predicting ``target`` whose key or run id matches any pattern (glob; all when None)."""
    having = [r for r in records if target in r.targets]
    if patterns is None:
        return having
    chosen = []
    for pattern in patterns:
        hits = [r for r in having if fnmatch.fnmatch(r.key, pattern) or fnmatch.fnmatch(r.manifest["run_id"], pattern)]
        if not hits:
            known = ", ".join(r.key for r in having) or "none"
            raise BlendError(f"blend.runs: {pattern!r} matches no stored run predicting {target}; stored: {known}")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def check_compatible(records: list[RunRecord], target: str, ds: Dataset | None = None) -> None:
    """Refuse runs made on different folds, data or class order, or lacking test predictions."""
    if not records:
        raise BlendError(f"no stored run predicts target {target!r}; run mer-ensemble train-all first")
    ref = records[0]
    for key, what in (("folds_hash", "folds"), ("data_fingerprint", "data")):
        values = {r.manifest[key] for r in records}
        if len(values) > 1:
            groups = {v: [r.key for r in records if r.manifest[key] == v] for v in values}
            detail = "; ".join(f"{v}: {', '.join(k)}" for v, k in groups.items())
            raise BlendError(f"runs were made on different {what} ({key}) and cannot be blended: {detail}")
    for r in records:
        if r.classes(target) != ref.classes(target):
            raise BlendError(
                f"runs {ref.key} and {r.key} order the classes of {target} differently: "
                f"{ref.classes(target)} vs {r.classes(target)}"
            )
        if target not in r.test or r.test[target].shape[0] != len(r.test_rows) or len(r.test_rows) == 0:
            raise BlendError(f"run {r.key} has no test predictions for {target}; retrain it")
        if not np.array_equal(r.rows, ref.rows) or not np.array_equal(r.test_rows, ref.test_rows):
            raise BlendError(f"runs {ref.key} and {r.key} cover different rows")
    if ds is not None:
        if ref.manifest["data_fingerprint"] != ds.fingerprint:
            raise BlendError(
                f"runs ({', '.join(r.key for r in records)}) were made on data {ref.manifest['data_fingerprint']}, "
                f"but the config's data is now {ds.fingerprint}; retrain with train-all"
            )
        if list(ds.task.target(target).classes) != ref.classes(target):
            raise BlendError(f"the runs' classes of {target} differ from the config's: {ref.classes(target)}")


def _method_params(name: str, cfg: Config, storage: str | None) -> dict[str, Any]:
    b = cfg.blend
    if name == "greedy":
        return {"steps": b.greedy_steps}
    if name == "optuna":
        return {"n_trials": b.optuna_trials, "seed": b.seed, "storage": storage}
    if name == "stacking":
        return {"meta": b.stacking_meta, "seed": b.seed}
    return {}


def blend_runs(
    cfg: Config,
    ds: Dataset,
    records: list[RunRecord],
    workdir: Path,
    *,
    methods: list[str] | None = None,
    choose: str | None = None,
) -> BlendResult:
    """Blend every target; score every method in-sample and nested; keep the chosen one's test probabilities."""
    from mer_ensemble.ensemble import in_sample_score, make_blender, nested_oof_proba

    methods = methods or cfg.blend.methods
    choose = choose or cfg.blend.choose
    if choose != "auto" and choose not in methods:
        raise BlendError(f"blend.choose: {choose!r} is not among blend.methods {methods}")
    storage = cfg.blend.optuna_storage or f"sqlite:///{(Path(workdir) / 'optuna.db').resolve()}"
    result = BlendResult()
    for target in ds.task.target_names:
        spec = ds.task.target(target)
        patterns = cfg.blend.runs.get(target) if isinstance(cfg.blend.runs, dict) else cfg.blend.runs
        runs = select_runs(records, patterns, target)
        check_compatible(runs, target, ds)
        y_all = ds.labels[target][runs[0].rows]
        known = y_all >= 0
        y = y_all[known]
        folds = runs[0].fold[known]
        oof = np.stack([r.oof[target][known] for r in runs])
        test = np.stack([r.test[target] for r in runs])

        def score(y_true: np.ndarray, y_pred: np.ndarray, _s=spec) -> float:
            return _s.score(y_true, y_pred)

        scored = []
        nested_probas = {}
        finals = {}
        for name in methods:
            params = _method_params(name, cfg, None)

            def factory(n=name, p=params):
                return make_blender(n, class_bias=cfg.blend.class_bias, **p)

            nested_proba = nested_oof_proba(factory, oof, y, folds, score)
            nested_probas[name] = nested_proba
            labels = nested_proba.argmax(1)
            per_fold = [float(score(y[folds == k], labels[folds == k])) for k in np.unique(folds)]
            final = make_blender(name, class_bias=cfg.blend.class_bias, **_method_params(name, cfg, storage))
            inner = getattr(final, "blender", final)
            if name == "optuna":
                # one study per blend input: the same runs resume it, changed predictions start a new one
                digest = hashlib.sha1(np.ascontiguousarray(oof, dtype=np.float32).tobytes() + y.tobytes()).hexdigest()
                inner.study_name = f"{cfg.stem}-{target}-{len(runs)}runs-{digest[:12]}"
            ins = in_sample_score(final, oof, y, folds, score)
            finals[name] = final
            desc = final.describe()
            desc["runs"] = [r.key for r in runs]
            scored.append(MethodScore(name, ins, float(score(y, labels)), per_fold, desc))
        best = (
            max(scored, key=lambda m: m.nested) if choose == "auto" else next(m for m in scored if m.method == choose)
        )
        test_by_method = {name: final.predict_proba(test) for name, final in finals.items()}
        result.targets[target] = TargetBlend(
            target=target,
            runs=[r.key for r in runs],
            methods=scored,
            chosen=best.method,
            test_proba=test_by_method[best.method],
            oof_nested_proba=nested_probas[best.method],
            y=y,
            test_by_method=test_by_method,
        )
    chosen = {t: next(m for m in b.methods if m.method == b.chosen) for t, b in result.targets.items()}
    result.combined_nested = ds.task.combined({t: m.nested for t, m in chosen.items()})
    result.combined_in_sample = ds.task.combined({t: m.in_sample for t, m in chosen.items()})
    return result
