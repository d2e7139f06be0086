"""The one job builder: ``models:`` entries → checked run plans → model × fold × seed jobs.

Every job of ``train-all``, a pseudo-label round or a ``tune`` trial is made here, from
the :class:`~mer_ensemble.experiment.Experiment`: a job carries the config (to read the
dataset from the workdir's cache), the path and hash of the folds (which the worker
verifies instead of re-deriving them), the model, its inputs and its output path. The
output folder of a run is keyed by :meth:`JobBuilder.run_digest`, so a changed model,
data, folds or pseudo-label file trains again while an unchanged one resumes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mer_ensemble import __version__
from mer_ensemble.config import Config, ModelSpec
from mer_ensemble.data.groupnorm import GROUP_SUFFIX, resolve_group_item
from mer_ensemble.data.raw import RAW_KINDS, raw_key, raw_kind
from mer_ensemble.errors import ConfigError
from mer_ensemble.experiment import Experiment
from mer_ensemble.training.jobs import JobSpec

__all__ = [
    "JobBuilder",
    "RunInputs",
    "RunPlan",
    "models_summary",
    "resolve_features",
    "resolve_targets",
    "select_specs",
    "spec_hash",
]


@dataclass
class RunPlan:
    """The jobs of one run (a ``models:`` entry, possibly in a pseudo-label round)."""

    key: str
    spec: ModelSpec
    features: list[str]
    targets: list[str]
    seeds: list[int]
    jobs: list[JobSpec]
    hash: str
    round: int = 0
    pseudo_file: str | None = None
    #: the raw inputs the run's model reads (``"text"``, ``"audio"``)
    raw: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunInputs:
    """What a checked ``models:`` entry reads: feature blocks, targets and raw inputs."""

    features: list[str]
    targets: list[str]
    raw: tuple[str, ...] = field(default=())


def spec_hash(*parts: Any) -> str:
    """Stable hash of JSON-able parts (model spec, folds hash, data fingerprint, pseudo file)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def resolve_features(spec: ModelSpec, cfg: Config) -> list[str]:
    """Feature names of a run: ``features`` may name modalities, features or both (default: all);
    raw inputs named there (``raw:text``) are not feature blocks (see :func:`named_raw_inputs`)."""
    modalities = cfg.data.features
    all_features = [f for names in modalities.values() for f in names]
    if not spec.features:
        return all_features
    out: list[str] = []
    for item in spec.features:
        derived = resolve_group_item(item, modalities)
        if raw_kind(item) is not None:
            continue
        if derived is not None:
            out.extend(f for f in derived if f not in out)
        elif item in modalities:
            out.extend(f for f in modalities[item] if f not in out)
        elif item in all_features:
            if item not in out:
                out.append(item)
        else:
            raise ConfigError(
                f"models[{spec.run_id}].features: {item!r} is neither a modality ({', '.join(modalities)}) "
                f"nor a feature ({', '.join(all_features)}), with or without {GROUP_SUFFIX}, "
                f"nor a raw input ({', '.join(raw_key(k) for k in RAW_KINDS)})"
            )
    return out


def named_raw_inputs(spec: ModelSpec) -> list[str]:
    """The raw inputs a run's ``features`` list names (``raw:text`` -> ``text``), checked."""
    named = [kind for kind in map(raw_kind, spec.features or []) if kind is not None]
    unknown = [k for k in named if k not in RAW_KINDS]
    if unknown:
        raise ConfigError(f"models[{spec.run_id}].features: unknown raw input(s) {[raw_key(k) for k in unknown]}; "
                          f"expected {', '.join(raw_key(k) for k in RAW_KINDS)}")
    return named


def resolve_targets(spec: ModelSpec, task_targets: list[str]) -> list[str]:
    """Targets of a run: its ``targets`` (checked against the task's) or all of the task's."""
    if not spec.targets:
        return list(task_targets)
    bad = [t for t in spec.targets if t not in task_targets]
    if bad:
        raise ConfigError(f"models[{spec.run_id}].targets: unknown target(s) {bad}; task targets: {task_targets}")
    return list(spec.targets)


def select_specs(cfg: Config, run_ids: Iterable[str] | None) -> list[ModelSpec]:
    """The ``models:`` entries to train (all, or those named), erroring on unknown ids."""
    if not cfg.models:
        raise ConfigError(f"{cfg.source}: models: the config lists no model to train")
    if run_ids is None:
        return list(cfg.models)
    by_id = {m.run_id: m for m in cfg.models}
    wanted = [r.strip() for r in run_ids if r.strip()]
    unknown = [r for r in wanted if r not in by_id]
    if unknown:
        raise ConfigError(f"--models: unknown run id(s) {unknown}; the config has {', '.join(by_id)}")
    return [by_id[r] for r in wanted]


#: where each raw input comes from, for the error when a run needs one the data lacks
RAW_SOURCES = {
    "text": "set data.text_column (generic: a column of the labels CSV), use MEIJU lists with a sentence column, "
            "or set data.text_file to a CSV with a name and a text column",
    "audio": "set data.audio_dir to a folder holding <name>.wav per name",
}


_UNREADABLE: dict[str, str | None] = {}


def _unreadable_audio(digest: str, values: Any, names: Any) -> str | None:
    """:func:`~mer_ensemble.data.raw.describe_unreadable`, remembered per audio digest (paths, sizes
    and modification times), so pseudo-label rounds and ``check`` read the headers once."""
    from mer_ensemble.data.raw import describe_unreadable

    if digest not in _UNREADABLE or not digest:
        _UNREADABLE[digest] = describe_unreadable(values, names)
    return _UNREADABLE[digest]


def _file_digest(path: str) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]


class JobBuilder:
    """Makes every job of an experiment.

    ``threads``: CPU threads of every job (default ``train.threads``, else the family's rule,
    :func:`~mer_ensemble.training.resources.job_threads`). How many jobs run in parallel never
    changes it: the thread count changes a CPU fit's numbers, so it is part of the run digest.
    """

    def __init__(self, exp: Experiment, *, threads: int | None = None) -> None:
        self.exp = exp
        self.threads = threads or exp.config.train.threads
        self._config = exp.config.model_dump(mode="json")

    def threads_for(self, family: str) -> int:
        """CPU threads of a job of ``family`` (fixed per experiment and machine)."""
        from mer_ensemble.training.resources import family_on_cuda, job_threads

        return job_threads(family_on_cuda(family, self.exp.config.train.device), self.threads)

    def check_spec(self, spec: ModelSpec) -> tuple[list[str], list[str]]:
        """Check a ``models:`` entry (:meth:`resolve_inputs`); returns its ``(features, targets)``.
        ``mer-ensemble check`` runs this for every entry."""
        inputs = self.resolve_inputs(spec)
        return inputs.features, inputs.targets

    def resolve_inputs(self, spec: ModelSpec) -> RunInputs:
        """Check a ``models:`` entry (family, parameter names, features, targets, then the
        parameter values and types by building the model once with the data's feature dims, as
        every job will, then the raw inputs that model declares against the data's); returns
        what it reads. Errors name the run id and what is allowed."""
        from mer_ensemble.models import get_model_class, model_defaults

        try:
            family = get_model_class(spec.name)
        except Exception as exc:  # noqa: BLE001 - re-raised with the run id
            raise ConfigError(f"models[{spec.run_id}].name: {exc}") from None
        unknown = sorted(set(spec.params) - set(model_defaults(spec.name)))
        if unknown:
            raise ConfigError(
                f"models[{spec.run_id}].params: unknown parameter(s) {unknown} for {spec.name}; "
                f"allowed: {sorted(model_defaults(spec.name))}"
            )
        features = resolve_features(spec, self.exp.config)
        targets = resolve_targets(spec, self.exp.task.target_names)
        if family.needs_features and not features:
            raise ConfigError(f"models[{spec.run_id}].features: {spec.name} needs at least one feature block "
                              "(a modality or a feature folder)")
        raw = self._raw_inputs(spec, self.model_for(spec.run_id, spec.name, spec.params, features, targets))
        return RunInputs(features, targets, raw)

    def model_for(self, run_id: str, name: str, params: dict[str, Any], features: list[str],
                  targets: list[str]) -> Any:
        """The model a job of this run builds (unfitted), with the data's feature dims; parameter
        values and types that the family refuses are a :class:`ConfigError` naming the run."""
        from mer_ensemble.errors import DataError, ModelError
        from mer_ensemble.models import create_model

        ds = self.exp.dataset
        try:
            return create_model(
                name,
                targets={t: ds.task.target(t).n_classes for t in targets},
                feature_dims={f: ds.features[f].dim for f in features},
                modalities={f: ds.features[f].modality for f in features},
                device=self.exp.config.train.device,
                **self.resolved_params(name, params),
            )
        except (ModelError, DataError) as exc:
            raise ConfigError(f"models[{run_id}]: {exc}") from None

    def resolved_params(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` as a job receives them: paths the family's parameters name (a checkpoint
        folder) resolved from the config file's folder (:meth:`MerModel.resolve_paths`)."""
        from mer_ensemble.models import get_model_class

        try:
            family = get_model_class(name)
        except Exception:  # noqa: BLE001 - an unknown family is reported by the caller with the run id
            return dict(params)
        return family.resolve_paths(dict(params), self.exp.config.resolve_path)

    def _raw_inputs(self, spec: ModelSpec, model: Any) -> tuple[str, ...]:
        """The raw inputs ``model`` declares, checked against what the run names and what the data has."""
        declared = tuple(model.raw_inputs)
        extra = [raw_key(k) for k in named_raw_inputs(spec) if k not in declared]
        if extra:
            reads = ", ".join(raw_key(k) for k in declared) or "no raw input"
            raise ConfigError(f"models[{spec.run_id}].features: {spec.name} does not read {', '.join(extra)} "
                              f"(it reads {reads})")
        have = self.exp.dataset.raw
        for kind in declared:
            if kind not in have:
                raise ConfigError(f"models[{spec.run_id}]: {spec.name} reads {raw_key(kind)} but the data has none; "
                                  f"{RAW_SOURCES[kind]}")
        return declared

    def check_raw_rows(self, run_id: str, name: str, raw: Sequence[str], params: Mapping[str, Any]) -> None:
        """For the raw inputs a run needs on every row (its family's ``required_raw``): a one-line
        :class:`ConfigError` naming the rows (training, test and pool) that lack one or whose audio
        file cannot be read. Audio headers are read once per set of files."""
        from mer_ensemble.data.raw import describe_missing
        from mer_ensemble.models import get_model_class

        ds = self.exp.dataset
        for kind in get_model_class(name).required_raw(params, raw):
            problem = describe_missing(kind, ds.raw[kind], ds.names)
            if problem is None and kind == "audio":
                problem = _unreadable_audio(ds.raw_digests.get(kind, ""), ds.raw[kind], ds.names)
            if problem:
                raise ConfigError(f"models[{run_id}]: {name} needs {raw_key(kind)} on every row it trains on or "
                                  f"predicts; {problem}")

    def run_digest(self, name: str, params: dict[str, Any], features: list[str], targets: list[str],
                   pseudo_file: str | None = None, *, threads: int | None = None, raw: Sequence[str] = ()) -> str:
        """The key of a run's job folder: model, parameters, inputs (the raw inputs it reads by
        their content), folds, data, pseudo-label file, CPU threads per job (they change a CPU
        fit's numbers), version, and what a family adds through a ``run_identity(params)``
        classmethod (a fine-tuned checkpoint's identity)."""
        from mer_ensemble.models import get_model_class

        exp = self.exp
        pseudo_digest = _file_digest(pseudo_file) if pseudo_file else None
        threads = threads or self.threads_for(name)
        parts: list[Any] = [name, params, features, targets, exp.folds.hash, exp.dataset.fingerprint, pseudo_digest,
                            exp.config.data.max_frames, {"threads": threads}, __version__]
        if raw:
            parts.append({"raw": {kind: exp.dataset.raw_digests[kind] for kind in raw}})
        identity = getattr(get_model_class(name), "run_identity", None)
        if identity is not None:  # the parameters as written above; the identity of what they name here
            parts.append(identity(self.resolved_params(name, params)))
        return spec_hash(*parts)

    def job(self, *, run_key: str, model: str, params: dict[str, Any], features: list[str], targets: list[str],
            fold: int, seed: int, out: Path, pseudo_file: str | None = None, threads: int | None = None,
            raw: Sequence[str] | None = None) -> JobSpec:
        """One model × fold × seed job writing ``out`` (``threads``: default :meth:`threads_for`;
        ``raw``: default the raw inputs the model declares with these ``params``)."""
        from mer_ensemble.models import model_ref

        exp = self.exp
        if raw is None:
            raw = tuple(self.model_for(run_key, model, params, features, targets).raw_inputs)
        return JobSpec(
            config=self._config,
            config_source=exp.config.source or "config",
            workdir=str(exp.workdir),
            folds_path=exp.folds.path,
            folds_hash=exp.folds.hash,
            run_key=run_key,
            model={"name": model, "params": self.resolved_params(model, params)},
            features=tuple(features),
            targets=tuple(targets),
            fold=fold,
            seed=seed,
            out=str(out),
            threads=threads or self.threads_for(model),
            pseudo_file=pseudo_file,
            device=exp.config.train.device,
            raw=tuple(raw),
            model_ref=model_ref(model),
        )

    def plan(self, spec: ModelSpec, *, round_: int = 0, pseudo_file: str | None = None,
             key_suffix: str = "") -> RunPlan:
        """The checked run of one ``models:`` entry: every fold × seed job, outputs under
        ``workdir/jobs/<run key>/<run digest>/``."""
        inputs = self.resolve_inputs(spec)
        features, targets, raw = inputs.features, inputs.targets, inputs.raw
        seeds = list(spec.seeds or self.exp.config.cv.seeds)
        key = spec.run_id + key_suffix
        threads = self.threads_for(spec.name)
        digest = self.run_digest(spec.name, spec.params, features, targets, pseudo_file, threads=threads, raw=raw)
        folder = self.exp.workdir / "jobs" / key / digest
        jobs = [
            self.job(run_key=key, model=spec.name, params=spec.params, features=features, targets=targets,
                     fold=k, seed=seed, out=folder / f"fold{k}-seed{seed}.npz", pseudo_file=pseudo_file,
                     threads=threads, raw=raw)
            for seed in seeds
            for k in range(self.exp.folds.n_folds)
        ]
        return RunPlan(key, spec, features, targets, seeds, jobs, digest, round_, pseudo_file, raw)


def models_summary(exp: Experiment) -> str:
    """The runs ``train-all`` would train, one line each (checked like ``train-all`` checks them)."""
    cfg = exp.config
    if not cfg.models:
        return "models: none (add models: auto or entries to train)"
    builder = JobBuilder(exp)
    n_auto = sum(1 for m in cfg.models if m.origin == "auto")
    lines = [f"models: {len(cfg.models)} run(s)" + (f", {n_auto} from models: auto" if n_auto else "")]
    lines.extend(exp.notes)
    width = max(len(m.run_id) for m in cfg.models)
    for spec in cfg.models:
        inputs = builder.resolve_inputs(spec)
        seeds = spec.seeds or cfg.cv.seeds
        mark = " (auto)" if spec.origin == "auto" else ""
        reads = "+".join([*inputs.features, *map(raw_key, inputs.raw)])
        lines.append(f"  {spec.run_id:<{width}}  {spec.name:<17} {reads}  targets {','.join(inputs.targets)}"
                     f"  seeds {len(seeds)}{mark}")
    return "\n".join(lines)
