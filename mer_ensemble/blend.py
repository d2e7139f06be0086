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
"""

from __future__ import annotations

import fnmatch
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.config import BlendConfig
from mer_ensemble.data.dataset import Dataset
from mer_ensemble.errors import BlendError, ConfigError, StoreError
from mer_ensemble.experiment import Experiment
from mer_ensemble.io import open_npz, read_json
from mer_ensemble.store import RunRecord
from mer_ensemble.tasks import TaskSpec

__all__ = [
    "BlendResult",
    "LatestBlend",
    "MethodScore",
    "blend_runs",
    "check_blend_config",
    "check_compatible",
    "check_out",
    "load_latest_blend",
    "save_blend",
    "select_runs",
    "unfinished_runs",
]

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


def _storage_errors() -> tuple[type[BaseException], ...]:
    """What an Optuna storage raises when it cannot be opened or written (read-only or full disk,
    locked database, a damaged file or one that is not Optuna's)."""
    try:
        import optuna
        import sqlalchemy.exc
    except ImportError:  # pragma: no cover - both are dependencies
        return ()
    return optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError


#: words of a database error that mean the disk, not the file, is at fault
_DISK_TROUBLE = ("readonly", "read-only", "full", "no space", "unable to open", "locked", "permission")


def _storage_failure(exc: BaseException, storage: str, name: str) -> _StorageFailure:
    """One line for a storage that cannot be used: the disk's fault, or a damaged database file."""
    reason = _first_line(exc)
    if any(word in reason.lower() for word in _DISK_TROUBLE):
        hint = "a read-only or full disk? point blend.storage at a writable place"
    else:
        target = storage.removeprefix("sqlite:///") if storage.startswith("sqlite:///") else "it"
        hint = (f"the database is damaged or not an Optuna storage: delete {target} (it only keeps the final "
                "blends' Optuna trials, which blend runs again) or point blend.storage elsewhere")
    return _StorageFailure(f"blend.storage {storage}: cannot use the {name} study ({reason}); {hint}")


def _first_line(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__ or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0]}" if text else type(cause).__name__


def _study_name(exp: Experiment, target: str, oof: np.ndarray, y: np.ndarray) -> str:
    """One study per blend input: the same runs resume it, changed predictions start a new one."""
    digest = hashlib.sha1(np.ascontiguousarray(oof, dtype=np.float32).tobytes() + y.tobytes()).hexdigest()
    return f"{exp.stem}-{target}-{oof.shape[0]}runs-{digest[:12]}"


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
    context = FitContext(storage=storage, study_name=_study_name(exp, target, oof, y), repeatable=True)
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
        except _StorageFailure:
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
    except _storage_errors() as exc:
        raise _storage_failure(exc, storage, name) from None
    ins = float(score(y, final.predict(oof)))
    return final, nested_proba, MethodScore(name, ins, float(score(y, labels)), per_fold, final.describe())


def _fold_scores(score: Any, y: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> list[float]:
    """``score`` of ``labels`` against ``y`` on each fold's rows, in fold-id order."""
    return [float(score(y[folds == k], labels[folds == k])) for k in np.unique(folds)]


class _StorageFailure(BlendError):
    """The Optuna storage cannot be written: fatal for the whole blend, never a skipped method."""


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
