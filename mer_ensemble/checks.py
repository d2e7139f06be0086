"""Every check ``train-all``, ``blend`` and ``pseudo-label`` make before they start work,
run by ``mer-ensemble check`` so that its "ok" means those commands will start.

The dataset and folds are checked when the :class:`~mer_ensemble.experiment.Experiment`
opens; here come the ``models:`` entries (family, parameter names, values and types,
features, targets: :meth:`~mer_ensemble.training.plan.JobBuilder.check_spec`, the same
call ``train-all`` makes), the blend settings, the pseudo-label settings and the
training backend.
"""

from __future__ import annotations

import fnmatch

from mer_ensemble.config import Config
from mer_ensemble.errors import ConfigError
from mer_ensemble.experiment import Experiment

__all__ = ["check_experiment"]


def check_experiment(exp: Experiment) -> list[str]:
    """Raise the first error ``train-all``/``blend``/``pseudo-label`` would raise on their
    settings; returns one line per group of checks that passed (for the ``check`` summary)."""
    from mer_ensemble.blend import check_blend_config
    from mer_ensemble.data.raw import describe_missing
    from mer_ensemble.training.plan import JobBuilder, select_specs

    cfg = exp.config
    specs = select_specs(cfg, None)
    builder = JobBuilder(exp)
    lacking = []
    for spec in specs:
        raw = builder.resolve_inputs(spec).raw
        builder.check_raw_rows(spec.run_id, spec.name, raw, spec.params)
        for kind in raw:
            missing = describe_missing(kind, exp.dataset.raw[kind], exp.dataset.names)
            if missing:
                lacking.append(f"models[{spec.run_id}] reads {missing}; the model gets None for them")
    check_blend_config(cfg.blend)
    _check_blend_runs(cfg)
    _check_pseudo(cfg)
    _check_train(cfg)
    return [
        f"models: {len(specs)} run(s) checked (family, parameters and their values, features, raw inputs, targets)",
        *lacking,
        f"blend: methods {', '.join(cfg.blend.methods)}; choose {cfg.blend.choose}",
        "pseudo-label: " + _pseudo_summary(cfg),
    ]


def _run_ids(cfg: Config) -> list[str]:
    return [m.run_id for m in cfg.models]


def _check_blend_runs(cfg: Config) -> None:
    """Each ``blend.runs`` pattern matches a configured run id (a ``@r<k>`` round suffix allowed)."""
    runs = cfg.blend.runs
    if runs is None:
        return
    by_target = runs if isinstance(runs, dict) else {"": runs}
    ids = _run_ids(cfg)
    for target, patterns in by_target.items():
        for pattern in patterns:
            base = pattern.split("@", 1)[0] or "*"
            if not any(fnmatch.fnmatch(i, base) or fnmatch.fnmatch(i, pattern) for i in ids):
                key = f"blend.runs.{target}" if target else "blend.runs"
                raise ConfigError(f"{key}: {pattern!r} matches no run id of models: ({', '.join(ids)})")


def _check_pseudo(cfg: Config) -> None:
    """``pseudo.runs``/``pseudo.retrain`` name configured runs; ``pseudo.min_agree`` is reachable."""
    from mer_ensemble.training.plan import select_specs

    p = cfg.pseudo
    for key, ids in (("pseudo.runs", p.runs), ("pseudo.retrain", p.retrain)):
        if ids is None:
            continue
        unknown = [r for r in ids if r not in _run_ids(cfg)]
        if unknown:
            raise ConfigError(f"{key}: unknown run id(s) {unknown}; the config has {', '.join(_run_ids(cfg))}")
        select_specs(cfg, ids)
    sources = p.runs or _run_ids(cfg)
    if p.min_agree is not None and p.min_agree > len(sources):
        raise ConfigError(
            f"pseudo.min_agree: {p.min_agree} runs must agree but pseudo-labelling uses {len(sources)} run(s) "
            f"({', '.join(sources)})"
        )


def _pseudo_summary(cfg: Config) -> str:
    p = cfg.pseudo
    sources = p.runs or _run_ids(cfg)
    agree = p.min_agree or len(sources)
    return f"{p.rounds} round(s), threshold {p.threshold}, {agree} of {len(sources)} run(s) must agree"


def _check_train(cfg: Config) -> None:
    if cfg.train.backend == "dask" and not cfg.train.scheduler:
        raise ConfigError(
            "train.scheduler: the dask backend needs a scheduler address, e.g. --scheduler tcp://10.0.0.5:8786"
        )
