"""The experiment every command works on: config + workdir + dataset + folds, built once.

``train-all``, ``tune``, ``blend``, ``pseudo-label`` and ``report`` receive an
:class:`Experiment` instead of rebuilding the same pieces: the dataset is read (and
cached) once, and the folds are read from ``workdir/folds.csv`` — checked against their
stored hash and settings — or made and written there on first use.

>>> from mer_ensemble.config import load_config
>>> from mer_ensemble.experiment import Experiment
>>> exp = Experiment.open(load_config("configs/demo.yaml"))      # doctest: +SKIP
>>> exp.folds.n_folds, exp.dataset.task.target_names              # doctest: +SKIP
(5, ['discrete'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mer_ensemble.config import Config
from mer_ensemble.data.dataset import Dataset
from mer_ensemble.data.folds import Folds, load_or_make_folds
from mer_ensemble.data.settings import DataSettings
from mer_ensemble.errors import ConfigError
from mer_ensemble.io import remove_stale_temps
from mer_ensemble.tasks import TaskSpec

__all__ = ["WORKDIR_FOLDERS", "Experiment", "check_workdir", "data_settings", "feature_roots"]

#: the folders a workdir keeps, and what each holds
WORKDIR_FOLDERS = {"store": "the prediction store", "cache": "the feature cache", "jobs": "the job results",
                   "blend": "the last blend", "pseudo": "the pseudo-label rounds", "tune": "the tuning trials"}


def check_workdir(workdir: str | Path) -> None:
    """Refuse a workdir (or one of its folders, or the first existing folder above it) that is a
    file: one :class:`ConfigError` naming the path and that a folder belongs there."""
    workdir = Path(workdir)
    for path in (workdir, *workdir.parents):
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                role = "the workdir" if path == workdir else f"a folder above the workdir {workdir}"
                raise ConfigError(f"{path}: is a file, but {role} must be a folder; move the file away or choose "
                                  "another --workdir")
            break
    for name, role in WORKDIR_FOLDERS.items():
        sub = workdir / name
        if (sub.exists() or sub.is_symlink()) and not sub.is_dir():
            raise ConfigError(f"{sub}: is a file, but the workdir keeps {role} in a folder of that name; move the "
                              "file away or use another --workdir")


def feature_roots(config: Config) -> list[Path]:
    """The folders holding feature folders, in search order: ``data.feature_root`` (one folder or a
    list; relative paths resolve from ``data.root``, as in MEIJU's ``Annotation/features``) or
    ``<data.root>/features``."""
    root = config.resolve_path(config.data.root)
    value = config.data.feature_root
    if not value:
        return [root / "features"]
    values = [value] if isinstance(value, str) else list(value)
    return [root / Path(v).expanduser() for v in values]  # an absolute path stays as it is


def data_settings(config: Config) -> DataSettings:
    """What the data layer needs from ``config``, as plain values with resolved paths."""
    from mer_ensemble.data.groupnorm import derived_feature_names

    data = config.data
    text_file = data.text_file
    return DataSettings(
        layout=data.layout,
        root=config.resolve_path(data.root),
        features={m: list(f) for m, f in data.features.items()},
        task=config.task,
        targets=list(data.targets) if data.targets else None,
        classes={t: list(c) for t, c in data.classes.items()},
        metric=config.scoring.metric,
        combine=config.scoring.combine,
        feature_roots=tuple(feature_roots(config)),
        label_file=data.label_file,
        test_file=data.test_file,
        pool_file=data.pool_file,
        candidate_file=data.candidate_file,
        group_by=data.group_by,
        train_splits=tuple(data.train_splits),
        cache=data.cache,
        noise_variants={f: list(v) for f, v in data.noise_variants.items()},
        group_features=tuple(derived_feature_names(data.features, (m.features for m in config.models))),
        text_column=data.text_column,
        text_file=tuple([text_file] if isinstance(text_file, str) else text_file or []),
        audio_dir=data.audio_dir,
    )


@dataclass
class Experiment:
    """One config's data, folds and workdir.

    ``config``: the validated config; ``workdir``: where folds, cache, jobs, store, blends
    and reports live; ``dataset``: every row with labels and features; ``folds``: the fixed
    fold assignment of the labelled rows (``workdir/folds.csv``).
    """

    config: Config
    workdir: Path
    dataset: Dataset
    folds: Folds
    #: what opening changed, for ``check`` to print (e.g. portfolio runs dropped and why)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        config: Config,
        workdir: str | Path | None = None,
        *,
        dataset: Dataset | None = None,
        use_cache: bool = True,
    ) -> Experiment:
        """Load the dataset (unless given) and read or make the folds.

        ``workdir`` defaults to the config's (``workdir:`` or ``runs/<config stem>``); it is
        created when missing. ``use_cache=False`` reads every feature file again.
        """
        from mer_ensemble.data.load import load_dataset

        workdir = Path(workdir) if workdir is not None else config.default_workdir()
        check_workdir(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(workdir)
        ds = dataset if dataset is not None else load_dataset(data_settings(config), workdir, use_cache=use_cache)
        folds = load_or_make_folds(ds, workdir, config.cv.folds, config.cv.fold_seed)
        config, notes = _drop_unhelpful_group_runs(config, ds)
        config, raw_notes = _fit_portfolio_to_raw_inputs(config, ds)
        return cls(config, workdir, ds, folds, [*ds.notes, *notes, *raw_notes])

    @property
    def task(self) -> TaskSpec:
        return self.dataset.task

    @property
    def stem(self) -> str:
        """The config's name, used in study and submission names."""
        return self.config.stem


def _fit_portfolio_to_raw_inputs(config: Config, ds: Dataset) -> tuple[Config, list[str]]:
    """Fit the portfolio's raw-input runs to the data: drop those on a raw input the data does not
    have (``portfolio.finetune`` names an audio checkpoint but there is no ``data.audio_dir``) or that
    some rows lack for audio; where some rows lack text, the run reads them as empty text
    (``missing_text: empty``) rather than refusing the data. Runs a config names stay as written."""
    from mer_ensemble.data.raw import missing_rows, raw_kind
    from mer_ensemble.models import get_model_class

    models, notes, dropped = [], [], []
    for spec in config.models:
        kinds = [k for k in (raw_kind(f) for f in spec.features or []) if k is not None]
        if spec.origin != "auto" or not kinds:
            models.append(spec)
            continue
        absent = [k for k in kinds if k not in ds.raw]
        lacking = {k: int(missing_rows(ds.raw[k]).sum()) for k in kinds if k in ds.raw}
        if absent:
            dropped.append(f"{spec.run_id} (no raw {'/'.join(absent)} in the data)")
        elif lacking.get("audio"):
            dropped.append(f"{spec.run_id} ({lacking['audio']} of {ds.n_rows} rows have no audio file)")
        elif lacking.get("text") and "missing_text" in get_model_class(spec.name).defaults:
            models.append(spec.model_copy(update={"params": {**spec.params, "missing_text": "empty"}}))
            notes.append(f"portfolio: {spec.run_id} reads the {lacking['text']} of {ds.n_rows} rows without "
                         "text as empty text")
        else:
            models.append(spec)
    if dropped:
        notes.insert(0, f"portfolio: left out {', '.join(dropped)}")
    return (config.model_copy(update={"models": models}) if dropped or notes else config), notes


def _drop_unhelpful_group_runs(config: Config, ds: Dataset) -> tuple[Config, list[str]]:
    """Without ``portfolio.group_norm: true``, drop the portfolio's ``@group`` runs where the
    data gives group normalisation nothing to work with (too small groups, test rows without one)."""
    from mer_ensemble.data.groupnorm import group_norm_problem
    from mer_ensemble.names import GROUP_SUFFIX

    def grouped(spec) -> bool:  # noqa: ANN001 - ModelSpec
        return spec.origin == "auto" and any(f.endswith(GROUP_SUFFIX) for f in spec.features or [])

    dropped = [s.run_id for s in config.models if grouped(s)]
    if not dropped or config.portfolio.group_norm is True:
        return config, []
    problem = group_norm_problem(ds.groups, ds.test_rows)
    if problem is None:
        return config, []
    kept = [s for s in config.models if not grouped(s)]
    return (config.model_copy(update={"models": kept}),
            [f"portfolio: no group-normalised runs ({', '.join(dropped)}): {problem}"])
