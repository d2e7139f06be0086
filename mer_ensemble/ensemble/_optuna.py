"""Blend weights on the simplex searched by Optuna (seeded TPE by default, resumable storage)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mer_ensemble.ensemble._base import FitContext, ScoreFn, WeightedBlender
from mer_ensemble.ensemble._registry import register_blender
from mer_ensemble.ensemble._scoring import batch_scorer
from mer_ensemble.errors import BlendError

__all__ = ["OptunaWeightsBlender"]

SAMPLERS = ("tpe", "random", "cmaes")
DEFAULT_STUDY_NAME = "mer-ensemble-weights"


def _data_key(probas: np.ndarray, y: np.ndarray) -> str:
    """Short hash of the blended data, so that a stored study is never resumed on other data."""
    digest = hashlib.sha1(np.ascontiguousarray(y).tobytes())
    digest.update(np.ascontiguousarray(probas, dtype=np.float32).tobytes())
    digest.update(repr(probas.shape).encode())
    return digest.hexdigest()[:16]


def _make_sampler(sampler: Any, seed: int | None) -> Any:
    import optuna

    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    if sampler == "tpe":
        # multivariate TPE models the weights jointly and is ~3x faster than independent TPE at 30 runs
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if sampler == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise BlendError("optuna sampler 'cmaes' needs the package cmaes (pip install cmaes)") from None
        return optuna.samplers.CmaEsSampler(seed=seed)
    raise BlendError(f"optuna: unknown sampler {sampler!r}; expected one of {', '.join(SAMPLERS)} or a BaseSampler")


@register_blender("optuna")
class OptunaWeightsBlender(WeightedBlender):
    """Weighted soft vote whose weights are tuned by an Optuna study on the metric.

    Each trial samples one value in ``[0, 1]`` per run (``w0`` … ``w{R-1}``) and
    normalises them onto the simplex (all zero → equal weights). The first trial of
    a new study is the equal-weight mean, so the result is never worse in-sample
    than soft voting.

    With a ``storage``, the stored study's completed trials are loaded first (the
    sampler learns from them), the new trials run in memory, and they are appended
    to the stored study in one batch when ``fit`` ends (also on an interrupt), because
    writing each parameter to SQLite as it is sampled costs tens of milliseconds apiece.
    Workers sharing a study therefore see each other's trials at their next ``fit``.

    Parameters
    ----------
    n_trials: trials to run in this ``fit`` (added to any trials already stored; with a
        ``repeatable`` fit context the stored study is topped up to ``n_trials`` and only its
        first ``n_trials`` trials count, so a second fit on the same data gives the same weights).
    seed: seed of the sampler (offset by the number of stored trials when resuming,
        so a resumed random search does not repeat itself).
    storage: ``None`` (in memory, unless the fit's ``context`` names a storage); an Optuna
        storage URL such as ``sqlite:///blend.db``; a plain file path such as ``blend.log``,
        opened as an Optuna ``JournalStorage`` file (about 10x faster to append to than
        SQLite); or an Optuna storage object. A stored study is loaded and continued
        (``load_if_exists``).
    study_name: name of the stored study (default: the context's, else ``mer-ensemble-weights``).
    sampler: ``"tpe"`` (multivariate TPE), ``"random"``, ``"cmaes"`` or an Optuna sampler instance.

    Learned: ``weights_`` ``(R,)``; ``best_score_``; ``n_trials_`` completed trials in
    the study after ``fit``; ``study_name_``.
    """

    label = "Optuna weights"

    def __init__(
        self,
        n_trials: int = 200,
        seed: int | None = 0,
        storage: Any = None,
        study_name: str | None = None,
        sampler: Any = "tpe",
    ) -> None:
        self.n_trials = n_trials
        self.seed = seed
        self.storage = storage
        self.study_name = study_name
        self.sampler = sampler

    def _fit(
        self, probas: np.ndarray, y: np.ndarray, *, folds: np.ndarray | None, score_fn: ScoreFn, context: FitContext
    ) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if int(self.n_trials) < 0:
            raise BlendError(f"optuna: n_trials must be >= 0; got {self.n_trials}")
        n_runs = probas.shape[0]
        complete = (optuna.trial.TrialState.COMPLETE,)
        stored = self._open_stored(optuna, probas, y, context)
        history = [] if stored is None else stored.get_trials(deepcopy=False, states=complete)
        n_run = int(self.n_trials)
        if context.repeatable and history:  # top the study up to n_trials; only its first n_trials count
            history = sorted(history, key=lambda t: t.number)[: int(self.n_trials)]
            n_run = int(self.n_trials) - len(history)
        seed = None if self.seed is None else int(self.seed) + len(history)
        study = optuna.create_study(direction="maximize", sampler=_make_sampler(self.sampler, seed))
        if history:
            study.add_trials(history)
        else:
            study.enqueue_trial({f"w{r}": 1.0 for r in range(n_runs)})
        try:
            study.optimize(_objective(probas, y, score_fn), n_trials=n_run, gc_after_trial=False)
        finally:
            new = study.get_trials(deepcopy=False, states=complete)[len(history) :]
            if stored is not None and new:
                stored.add_trials(new)
        if not history and not new:
            raise BlendError(f"optuna: study {self.study_name_!r} has no completed trial; use n_trials > 0")
        # the first of the best (trials in the order they were run): the same trials give the same weights
        best = max([*history, *new], key=lambda t: float(t.value)) if context.repeatable else study.best_trial
        self.weights_ = _simplex([best.params[f"w{r}"] for r in range(n_runs)])
        self.best_score_ = float(best.value)
        self.n_trials_ = len(history) + len(new)

    def _open_stored(self, optuna: Any, probas: np.ndarray, y: np.ndarray, context: FitContext) -> Any:
        """The stored study (created if absent) after checking it was built on the same data; None in memory."""
        self.study_name_ = self.study_name or context.study_name or DEFAULT_STUDY_NAME
        storage = self.storage if self.storage is not None else context.storage
        if storage is None:
            return None
        data_key = _data_key(probas, y)
        study = optuna.create_study(
            storage=_open_storage(storage), study_name=self.study_name_, direction="maximize", load_if_exists=True
        )
        stored_key = study.user_attrs.get("data_key")
        if stored_key is None:
            study.set_user_attr("data_key", data_key)
            study.set_user_attr("n_runs", int(probas.shape[0]))
        elif stored_key != data_key:
            raise BlendError(
                f"optuna: study {self.study_name_!r} in {storage} was run on other data "
                f"({study.user_attrs.get('n_runs')} runs, data key {stored_key}; now {probas.shape[0]} runs, "
                f"data key {data_key}); give a new study_name"
            )
        return study


def _open_storage(storage: Any) -> Any:
    """An Optuna storage URL or object as given; a plain path becomes a ``JournalStorage`` file."""
    if isinstance(storage, (str, Path)) and "://" not in str(storage):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(storage)))
    return storage


def _objective(probas: np.ndarray, y: np.ndarray, score_fn: ScoreFn) -> Callable[[Any], float]:
    """Trial → score of the argmax of the ``w``-weighted blend of ``probas`` ``(R, n, C)``."""
    n_runs, n_rows, n_classes = probas.shape
    runs_flat = probas.astype(np.float32).reshape(n_runs, n_rows * n_classes)
    score_batch = batch_scorer(score_fn, n_classes)

    def objective(trial: Any) -> float:
        raw = np.array([trial.suggest_float(f"w{r}", 0.0, 1.0) for r in range(n_runs)], dtype=np.float32)
        if raw.sum() <= 0:
            raw[:] = 1.0
        labels = (raw @ runs_flat).reshape(n_rows, n_classes).argmax(axis=1)
        return float(score_batch(y, labels[None, :])[0])

    return objective


def _simplex(raw: list[float] | np.ndarray) -> np.ndarray:
    """Normalise non-negative values ``(R,)`` to sum to 1 (all zero → equal weights)."""
    values = np.clip(np.asarray(raw, dtype=np.float64), 0.0, None)
    total = values.sum()
    return values / total if total > 0 else np.full(values.shape, 1.0 / values.size)
