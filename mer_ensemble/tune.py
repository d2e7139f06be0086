"""Hyper-parameter search of one ``models:`` entry with Optuna, against its CV score.

A trial draws parameters from the family's search space, fits the run's fold
models (``run_job`` on each fold × seed, results in a temporary folder under the
workdir) and scores each fold model on that fold's validation rows only. After
each fold the running mean of the fold scores is reported, so a median pruner
stops trials that trail the others early. The study lives in an Optuna storage
(``sqlite:///<workdir>/tune.db`` by default, any RDB URL such as PostgreSQL, or
``journal:PATH``) under a name derived from the config and the run id, so any
number of worker processes, on any number of machines, can share one study.
"""

from __future__ import annotations

import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mer_ensemble.config import Config, ModelSpec
from mer_ensemble.errors import ConfigError, ModelError, StoreError, TuneError
from mer_ensemble.io import open_npz

if TYPE_CHECKING:
    import optuna

    from mer_ensemble.experiment import Experiment
    from mer_ensemble.training.plan import JobBuilder

__all__ = [
    "default_spaces",
    "TuneError",
    "TuneResult",
    "check_space",
    "default_storage",
    "open_storage",
    "search_space",
    "study_name_for",
    "suggest_params",
    "tune_model",
    "tuned_entry",
    "write_tuned_config",
]

def default_spaces() -> dict[str, dict[str, dict[str, Any]]]:
    """The default search space of every registered family that has one (the family's
    ``search_space`` attribute): family -> parameter -> distribution. ``type`` is ``int``,
    ``float`` or ``categorical``; ``log`` samples on a log scale."""
    from mer_ensemble.models import get_model_class, list_models

    return {name: dict(get_model_class(name).search_space) for name in list_models()
            if get_model_class(name).search_space}


_KINDS = ("int", "float", "categorical")


@dataclass
class TuneResult:
    """The state of a study after this process's trials.

    ``best_params`` are the full parameters of the best trial (the run's own
    ``params`` overridden by the sampled ones); ``best_value`` its mean CV score
    over the validation folds; the counts cover every process's trials.
    """

    study_name: str
    storage: str
    model_id: str
    family: str
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    n_complete: int
    n_pruned: int
    n_failed: int
    n_running: int
    seconds: float
    top: list[dict[str, Any]] = field(default_factory=list)


def search_space(family: str, override: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The search space of ``family``: ``override`` when given, else the default (validated)."""
    defaults = default_spaces()
    if override is not None:
        space = dict(override)
    elif family in defaults:
        space = defaults[family]
    else:
        raise TuneError(f"model family {family!r} has no default search space (defaults exist for "
                        f"{', '.join(defaults)}); pass one with --space FILE.yaml")
    return check_space(family, space)


def check_space(family: str, space: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Validate a space against the family's parameters; a plain list means ``categorical``."""
    from mer_ensemble.models import model_defaults

    allowed = model_defaults(family)
    if not space:
        raise TuneError(f"search space of {family}: empty; name at least one of {sorted(allowed)}")
    out: dict[str, dict[str, Any]] = {}
    for name, dist in space.items():
        where = f"search space of {family}: {name}"
        if name not in allowed:
            raise TuneError(f"{where}: not a parameter of {family}; allowed: {sorted(allowed)}")
        if isinstance(dist, list):
            dist = {"type": "categorical", "choices": dist}
        if not isinstance(dist, Mapping) or dist.get("type") not in _KINDS:
            raise TuneError(f"{where}: expected a mapping with type one of {', '.join(_KINDS)}, got {dist!r}")
        dist = dict(dist)
        if dist["type"] == "categorical":
            if not isinstance(dist.get("choices"), list) or not dist["choices"]:
                raise TuneError(f"{where}: categorical needs a non-empty list 'choices'")
        else:
            low, high = dist.get("low"), dist.get("high")
            if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low > high:
                raise TuneError(f"{where}: needs numbers low <= high, got low={low!r} high={high!r}")
            if dist.get("log") and (low <= 0 or dist.get("step") not in (None, 1)):
                raise TuneError(f"{where}: a log scale needs low > 0 and no step")
        out[name] = dist
    return out


def suggest_params(trial: optuna.Trial, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Draw one value per parameter of ``space`` from ``trial``."""
    params: dict[str, Any] = {}
    for name, dist in space.items():
        if dist["type"] == "categorical":
            params[name] = trial.suggest_categorical(name, dist["choices"])
        elif dist["type"] == "int":
            params[name] = trial.suggest_int(name, int(dist["low"]), int(dist["high"]), step=int(dist.get("step") or 1),
                                             log=bool(dist.get("log")))
        else:
            params[name] = trial.suggest_float(name, float(dist["low"]), float(dist["high"]), step=dist.get("step"),
                                               log=bool(dist.get("log")))
    return params


def _in_space(dist: Mapping[str, Any], value: Any) -> bool:
    if dist["type"] == "categorical":
        return value in dist["choices"]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not dist["low"] <= value <= dist["high"]:
        return False
    step = dist.get("step")
    if dist["type"] == "int":
        return float(value).is_integer() and (value - dist["low"]) % int(step or 1) == 0
    return step is None or math.isclose((value - dist["low"]) / step, round((value - dist["low"]) / step))


def default_storage(workdir: Path) -> str:
    """The default study storage: ``sqlite:///<workdir>/tune.db`` (absolute path)."""
    return f"sqlite:///{(Path(workdir) / 'tune.db').resolve()}"


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``: an RDB URL (``sqlite:///``, ``postgresql://``...) or ``journal:PATH``.

    SQLite waits up to a minute on a locked database (several local processes);
    RDB storages keep a heartbeat, so the trial of a killed worker is marked failed.
    """
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise TuneError(f"--storage {url!r}: expected an Optuna storage URL such as sqlite:///tune.db, "
                        "postgresql://user:pass@host/db or journal:PATH")
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=60,
                                                     grace_period=180)
            if url.startswith("sqlite:"):
                _serialize_sqlite(storage.engine)
            return storage
        except ImportError as exc:
            raise TuneError(f"--storage {url}: missing database driver ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - concurrent table creation on first use: retry
            if attempt == 4:
                raise TuneError(f"--storage {url}: cannot open ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _serialize_sqlite(engine: Any) -> None:
    """Start every SQLite transaction with ``BEGIN IMMEDIATE``.

    SQLite ignores ``SELECT ... FOR UPDATE``, so two processes could both take the
    same queued trial; an immediate transaction holds the write lock from its first
    read, which makes Optuna's read-then-update steps atomic across processes.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # pooled connections opened before the hooks are dropped


def study_name_for(cfg: Config, spec: ModelSpec, digest: str) -> str:
    """``<config stem>-<run id>-<digest>``; the digest covers data, folds, inputs and space."""
    return f"{cfg.stem}-{spec.run_id}-{digest}"


def _find_spec(cfg: Config, model_id: str) -> ModelSpec:
    by_id = {m.run_id: m for m in cfg.models}
    if model_id not in by_id:
        raise ConfigError(f"{cfg.source}: models: no entry with id {model_id!r}; the config has "
                          f"{', '.join(by_id) or 'none'}")
    return by_id[model_id]


@dataclass
class _Problem:
    """Everything a trial needs, fixed for the whole study."""

    exp: Experiment
    builder: JobBuilder
    spec: ModelSpec
    features: list[str]
    targets: list[str]
    seeds: list[int]
    space: dict[str, dict[str, Any]]
    trial_root: Path


def _fold_score(problem: _Problem, trial: optuna.Trial, k: int, params: dict[str, Any]) -> float:
    """Fit fold ``k`` for every seed; the combined score on fold ``k``'s validation rows."""
    from mer_ensemble.metrics import combine_scores
    from mer_ensemble.training.jobs import run_job

    per_target = []
    folder = problem.trial_root / f"trial{trial.number}"
    for seed in problem.seeds:
        job = problem.builder.job(run_key=f"tune-{problem.spec.run_id}", model=problem.spec.name, params=params,
                                  features=problem.features, targets=problem.targets, fold=k, seed=seed,
                                  out=folder / f"fold{k}-seed{seed}.npz")
        run_job(job)
        with open_npz(job.out, StoreError) as res:
            per_target.append(np.asarray(res["scores"], dtype=float))
    return combine_scores(list(np.mean(per_target, axis=0)), problem.exp.task.combine)


def _objective(problem: _Problem) -> Callable[[optuna.Trial], float]:
    import optuna

    def objective(trial: optuna.Trial) -> float:
        space = problem.space
        if trial.user_attrs.get("baseline"):
            # the run's own parameters: those outside the space (e.g. C: auto) are kept, not sampled
            space = {k: v for k, v in space.items() if k in _baseline(problem.spec, space)}
        params = {**problem.spec.params, **suggest_params(trial, space)}
        fold_scores: list[float] = []
        try:
            for k in range(problem.exp.folds.n_folds):
                fold_scores.append(_fold_score(problem, trial, k, params))
                trial.report(float(np.mean(fold_scores)), step=k)
                if k < problem.exp.folds.n_folds - 1 and trial.should_prune():
                    trial.set_user_attr("fold_scores", fold_scores)
                    raise optuna.TrialPruned(f"running mean {np.mean(fold_scores):.4f} after {k + 1} fold(s)")
        finally:
            shutil.rmtree(problem.trial_root / f"trial{trial.number}", ignore_errors=True)
        trial.set_user_attr("fold_scores", fold_scores)
        trial.set_user_attr("sd", float(np.std(fold_scores, ddof=1)) if len(fold_scores) > 1 else 0.0)
        return float(np.mean(fold_scores))

    return objective


def _baseline(spec: ModelSpec, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The run's current parameters, restricted to those inside the space."""
    from mer_ensemble.models import model_defaults

    current = {**model_defaults(spec.name), **spec.params}
    return {k: current[k] for k, dist in space.items() if _in_space(dist, current.get(k))}


def _make_pruner(pruner: str, n_folds: int) -> optuna.pruners.BasePruner:
    import optuna

    if pruner == "none":
        return optuna.pruners.NopPruner()
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=min(1, n_folds - 1))
    raise TuneError(f"--pruner {pruner!r}: expected median or none")


def tune_model(
    exp: Experiment,
    model_id: str,
    *,
    n_trials: int,
    storage: str | None = None,
    study_name: str | None = None,
    space: Mapping[str, Any] | None = None,
    pruner: str = "median",
    timeout: float | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> TuneResult:
    """Run ``n_trials`` trials of the study of ``model_id`` (joining it when it exists; 0 only reports it).

    The objective is the run's mean combined CV score over the validation folds
    (higher is better), fold models fitted exactly as ``train-all`` fits them.
    The run's current parameters are tried first when the study is empty.
    """
    import optuna

    from mer_ensemble.progress import progress_bar
    from mer_ensemble.training.plan import JobBuilder, spec_hash

    if n_trials < 0:
        raise TuneError(f"--trials {n_trials}: expected 0 (only report the study) or more")
    cfg, workdir = exp.config, exp.workdir
    spec = _find_spec(cfg, model_id)
    space_checked = search_space(spec.name, space)
    builder = JobBuilder(exp)
    features, targets = builder.check_spec(spec)
    seeds = list(spec.seeds or cfg.cv.seeds)
    digest = spec_hash(spec.name, spec.params, features, targets, exp.folds.hash, exp.dataset.fingerprint, seeds,
                       space_checked, cfg.data.max_frames, cfg.train.device)[:8]
    name = study_name or study_name_for(cfg, spec, digest)
    url = storage or default_storage(workdir)
    problem = _Problem(exp, builder, spec, features, targets, seeds, space_checked,
                       workdir / "tune" / f"{name}-{os.getpid()}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=open_storage(url), study_name=name, direction="maximize",
                                load_if_exists=True, sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=_make_pruner(pruner, exp.folds.n_folds))
    study.set_user_attr("model", spec.name)
    study.set_user_attr("run_id", spec.run_id)
    start = time.perf_counter()
    if n_trials == 0:
        return _result(study, url, spec, 0.0)
    if not study.trials:
        study.enqueue_trial(_baseline(spec, space_checked), user_attrs={"baseline": True}, skip_if_exists=True)
    try:
        with progress_bar(n_trials, f"tuning {model_id}", enabled=None if progress else False) as advance:
            study.optimize(_objective(problem), n_trials=n_trials, timeout=timeout, catch=(ModelError,),
                           callbacks=[lambda _study, _trial: advance(1)])
    finally:
        shutil.rmtree(problem.trial_root, ignore_errors=True)
    return _result(study, url, spec, time.perf_counter() - start)


def _result(study: optuna.Study, url: str, spec: ModelSpec, seconds: float) -> TuneResult:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    count = {s: sum(1 for t in trials if t.state == s) for s in TrialState}
    done = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: -float(t.value or 0.0))
    best = done[0] if done else None
    top = [{"trial": t.number, "value": t.value, "sd": t.user_attrs.get("sd"), "params": t.params,
            "baseline": bool(t.user_attrs.get("baseline"))} for t in done[:5]]
    return TuneResult(
        study_name=study.study_name, storage=url, model_id=spec.run_id, family=spec.name,
        best_value=float(best.value) if best and best.value is not None else None,
        best_params={**spec.params, **best.params} if best else {}, best_trial=best.number if best else None,
        n_complete=count[TrialState.COMPLETE], n_pruned=count[TrialState.PRUNED], n_failed=count[TrialState.FAIL],
        n_running=count[TrialState.RUNNING], seconds=seconds, top=top,
    )


def tuned_entry(spec: ModelSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """A ``models:`` entry ``<run id>_tuned`` with the same inputs and the tuned ``params``.

    Floats are rounded to 6 significant digits so that the YAML stays readable.
    """
    rounded = {k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in params.items()}
    entry: dict[str, Any] = {"name": spec.name, "id": f"{spec.run_id}_tuned", "features": spec.features,
                             "targets": spec.targets, "seeds": spec.seeds, "params": rounded}
    return {k: v for k, v in entry.items() if v is not None}


def _rebase(value: str, old_dir: Path, new_dir: Path) -> str:
    path = Path(value).expanduser()
    if path.is_absolute():
        return value
    return os.path.relpath((old_dir / path).resolve(), new_dir.resolve())


def write_tuned_config(cfg: Config, out: Path, entry: Mapping[str, Any], overrides: list[str] | None = None,
                       header: str = "") -> Path:
    """Write a copy of the config (with ``overrides`` applied) plus ``entry`` in ``models:``.

    An existing entry with the same id is replaced. Relative data paths are rewritten
    so that they still point at the same files from ``out``'s folder.
    """
    import yaml

    from mer_ensemble.config import apply_overrides, parse_config
    from mer_ensemble.io import atomic_write_text

    if not cfg.source or not Path(cfg.source).is_file():
        raise TuneError(f"--write-config: the config file {cfg.source} is not readable")
    source = Path(cfg.source)
    raw = apply_overrides(yaml.safe_load(source.read_text()) or {}, overrides or [])
    out = Path(out)
    old_dir, new_dir = source.resolve().parent, out.resolve().parent
    data = raw.get("data") or {}
    if isinstance(data.get("root"), str):  # data.feature_root is relative to data.root: it follows it
        data["root"] = _rebase(data["root"], old_dir, new_dir)
    for split, path in (raw.get("truth") or {}).items():
        raw["truth"][split] = _rebase(path, old_dir, new_dir)
    models = [m for m in raw.get("models") or [] if (m.get("id") or m.get("name")) != entry["id"]]
    raw["models"] = [*models, dict(entry)]
    parse_config(raw, str(out))  # refuse to write a config that would not load
    text = yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=120)
    atomic_write_text(out, (header + "\n" if header else "") + text)
    return out
