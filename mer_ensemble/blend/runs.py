"""Which stored runs go into a blend, and whether they can be blended: the same folds, data, raw
inputs and class order, test predictions present; and which configured runs are not stored yet."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np

from mer_ensemble.config import BlendConfig
from mer_ensemble.data.dataset import Dataset
from mer_ensemble.errors import BlendError, ConfigError
from mer_ensemble.experiment import Experiment
from mer_ensemble.store import RunRecord

__all__ = ["check_blend_config", "check_compatible", "select_runs", "unfinished_runs"]


def select_runs(records: list[RunRecord], patterns: list[str] | None, target: str) -> list[RunRecord]:
    """Runs predicting ``target`` whose key or run id matches any pattern (glob; all when None)."""
    having = [r for r in records if target in r.targets]
    if patterns is None:
        return having
    chosen = []
    for pattern in patterns:
        hits = [r for r in having
                if fnmatch.fnmatch(r.key, pattern) or fnmatch.fnmatch(r.manifest.get("run_id", r.key), pattern)]
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
        values = {r.manifest.get(key) for r in records}
        if len(values) > 1:
            groups = {v: [r.key for r in records if r.manifest.get(key) == v] for v in values}
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
        if ref.manifest.get("data_fingerprint") != ds.fingerprint:
            raise BlendError(
                f"runs ({', '.join(r.key for r in records)}) were made on data {ref.manifest.get('data_fingerprint')}, "
                f"but the config's data is now {ds.fingerprint}; retrain with train-all"
            )
        stale = [f"{r.key} ({kind})" for r in records for kind, digest in (r.manifest.get("raw_inputs") or {}).items()
                 if ds.raw_digests.get(kind) != digest]
        if stale:
            raise BlendError(f"runs {', '.join(stale)} read raw inputs that have changed since; retrain with train-all")
        if list(ds.task.target(target).classes) != ref.classes(target):
            raise BlendError(f"the runs' classes of {target} differ from the config's: {ref.classes(target)}")


def unfinished_runs(exp: Experiment, records: list[RunRecord]) -> list[str]:
    """The configured runs (those ``blend.runs`` selects) that the store lacks or holds with fewer
    seeds than configured, one short text each, e.g. ``"mlp (not in the store; 3 of 10 fold jobs
    trained)"`` or ``"xgb (stored with seeds [0] of [0, 1, 2])"``; empty when every run is complete."""
    from mer_ensemble.errors import MerError
    from mer_ensemble.training.plan import JobBuilder

    cfg = exp.config
    patterns = cfg.blend.runs
    if isinstance(patterns, dict):
        patterns = [p for ps in patterns.values() for p in ps]
    stored = {r.key: r for r in records}
    builder = JobBuilder(exp)
    out = []
    for spec in cfg.models:
        if patterns is not None and not any(fnmatch.fnmatch(spec.run_id, p) for p in patterns):
            continue
        seeds = list(spec.seeds or cfg.cv.seeds)
        record = stored.get(spec.run_id)
        if record is None:
            try:
                jobs = builder.plan(spec).jobs
                done = f"; {sum(Path(j.out).is_file() for j in jobs)} of {len(jobs)} fold jobs trained"
            except MerError:
                done = ""
            out.append(f"{spec.run_id} (not in the store{done})")
        elif sorted(record.manifest.get("seeds") or []) != sorted(seeds):
            out.append(f"{spec.run_id} (stored with seeds {record.manifest.get('seeds')} of {seeds})")
    return out


def check_blend_config(blend: BlendConfig) -> None:
    """Refuse unknown methods in ``blend.methods``/``blend.choose``/``blend.params`` and unknown
    settings of a method, naming the key and what is allowed (:class:`ConfigError`)."""
    from mer_ensemble.ensemble import BLENDERS, blender_params, list_blenders

    for key, names in (("blend.methods", blend.methods), ("blend.params", list(blend.params))):
        unknown = [n for n in names if n not in BLENDERS]
        if unknown:
            raise ConfigError(f"{key}: unknown blender(s) {unknown}; expected {', '.join(list_blenders())}")
    if not blend.methods:
        raise ConfigError("blend.methods: empty; name at least one of " + ", ".join(list_blenders()))
    from mer_ensemble.ensemble.choice import CHOICE_RULES

    if blend.choose not in CHOICE_RULES and blend.choose not in blend.methods:
        raise ConfigError(f"blend.choose: {blend.choose!r} is neither a rule ({', '.join(CHOICE_RULES)}) "
                          f"nor among blend.methods {blend.methods}")
    for name, params in blend.params.items():
        if not isinstance(params, dict):
            raise ConfigError(f"blend.params.{name}: expected a mapping of settings, got {params!r}")
        unknown = sorted(set(params) - set(blender_params(name)))
        if unknown:
            raise ConfigError(f"blend.params.{name}: unknown setting(s) {unknown}; allowed: {blender_params(name)}")
