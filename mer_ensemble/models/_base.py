"""The contract every registered model family fulfils.

A model is created by the registry with the shapes of the problem and its own
hyper-parameters, fitted on one fold's training rows (validation rows are for
early stopping only) and asked for class probabilities per target.

Inputs ``X`` map a feature name to either an ``(n, D)`` float32 array
(utterance level) or a :class:`~mer_ensemble.data.dataset.Frames` (frame level,
only for models whose ``input_level`` is ``"frame"``), and the raw inputs the family
declares (``raw_inputs``) under the reserved keys ``raw:text`` / ``raw:audio``, each an
``(n,)`` object array (the text, or an audio file path; None where the row has none).
Labels ``y`` map a target name to an ``(n,)`` int64 array with ``-1`` where the label is
unknown (masked out of the loss).

A family declares on its class what the training layer needs to know about it: its prior
value in a blend (``blend_value``), its cost before anything was measured
(:meth:`MerModel.prior_seconds` from a :class:`WorkSize`), its weight count
(:meth:`MerModel.n_weights`), whether it runs on a GPU (``uses_gpu``), whether it wants the
pool rows or noisy feature variants (``uses_unlabeled``, ``uses_variants``), which inputs
it reads (``raw_inputs``, ``needs_features``, ``raw_required``), the paths its parameters name
(:meth:`MerModel.resolve_paths`) and whether a job keeps the fitted model (``keeps_model``).
:mod:`mer_ensemble.training` asks the class and names no family.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from mer_ensemble.data.raw import RAW_KINDS, raw_key
from mer_ensemble.errors import DataError, ModelError
from mer_ensemble.models._common import check_labels
from mer_ensemble.models._inputs import check_inputs

__all__ = ["RAW_KINDS", "FitData", "Inputs", "Labels", "MerModel", "Probas", "ScoreFn", "WorkSize"]

#: rows of each raw input a :class:`WorkSize` carries for a family's length estimate
RAW_SAMPLE = 256

Inputs = Mapping[str, Any]
Labels = Mapping[str, np.ndarray]
Probas = dict[str, np.ndarray]
ScoreFn = Callable[[Labels, Mapping[str, np.ndarray]], float]


@dataclass(frozen=True)
class WorkSize:
    """The size of one fold job, from which a family estimates its seconds (:meth:`MerModel.prior_seconds`).

    ``n_fit`` training rows; ``n_predict`` rows predicted (validation + test + pool); ``dims``
    the feature blocks' widths; ``n_outputs`` classes summed over the targets; ``n_modalities``
    modalities among the features; ``gflops`` the machine's measured single-thread float32 matmul
    rate (GFLOP/s); ``on_cuda`` whether the job's model runs on CUDA; ``raw_inputs`` the raw
    inputs the job reads; ``raw_sample`` kind -> a few rows' raw values (texts, audio paths; up to
    :data:`RAW_SAMPLE` spread over the data), from which a family may measure typical lengths.
    """

    n_fit: int
    n_predict: int
    dims: list[int]
    n_outputs: int
    n_modalities: int = 1
    gflops: float = 1.0
    on_cuda: bool = False
    raw_inputs: tuple[str, ...] = ()
    raw_sample: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """The input width: the feature blocks side by side."""
        return int(sum(self.dims))


@dataclass
class FitData:
    """What :meth:`MerModel.fit` hands a family's ``_fit`` after checking it.

    ``X`` the training inputs (``n`` rows) and ``y`` their labels per target, ``(n,)`` int64
    in ``[-1, n_classes)``; ``X_val``/``y_val`` the validation rows (early stopping only) or
    None; ``score_fn`` the early-stopping score (None: the family's default); ``X_unlabeled``
    pool rows without labels (families with ``uses_unlabeled``); ``X_variants`` feature ->
    noisy versions of that feature for the rows of ``X`` (families with ``uses_variants``);
    ``groups`` ``(n,)`` the rows' groups (speakers, dialogues) for inner splits that keep a group
    on one side, ``val_candidates`` ``(n,)`` bool the rows an inner split may hold out (None: all).
    """

    X: Inputs
    y: dict[str, np.ndarray]
    n: int
    X_val: Inputs | None = None
    y_val: dict[str, np.ndarray] | None = None
    score_fn: ScoreFn | None = None
    X_unlabeled: Inputs | None = None
    X_variants: Mapping[str, Sequence[Any]] | None = None
    groups: np.ndarray | None = None
    val_candidates: np.ndarray | None = None


class MerModel(ABC):
    """Base class of a model family.

    Parameters
    ----------
    targets: target name -> number of classes, in task order.
    feature_dims: feature name -> input dimension D.
    modalities: feature name -> modality (``audio``, ``text``, ``video``...).
    seed: seed for every random choice of this model.
    device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    params: family hyper-parameters; unknown names raise :class:`ModelError`.
    """

    #: registry name, set by ``register_model``
    name: ClassVar[str] = ""
    #: ``"utt"``: all inputs pooled to (n, D); ``"frame"``: frame-level features arrive as Frames
    input_level: ClassVar[str] = "utt"
    #: default hyper-parameters; the keys are the only accepted ``params``
    defaults: ClassVar[dict[str, Any]] = {}
    #: True when ``fit`` wants ``X_unlabeled`` (the runner passes the pool rows; may be an instance property)
    uses_unlabeled: ClassVar[bool] = False
    #: True when ``fit`` mixes noisy feature variants ``X_variants`` into training (may be an instance property)
    uses_variants: ClassVar[bool] = False
    #: True when the family runs on a GPU when asked for CUDA (one thread per CPU job otherwise; cluster
    #: jobs then request a GPU)
    uses_gpu: ClassVar[bool] = False
    #: prior value of a run's first seed in a blend: ``train-all --time-limit`` orders runs by value
    #: per expected second (the neural families and the linear model carry the leaderboards on
    #: pre-extracted features: 1.0; XGBoost on wide embeddings is weaker: 0.7)
    blend_value: ClassVar[float] = 0.7
    #: raw inputs the family reads besides feature blocks, from :data:`RAW_KINDS` (an instance may
    #: narrow or replace them by its params, as a property); the job builder passes exactly these
    raw_inputs: ClassVar[tuple[str, ...]] = ()
    #: False for a family that can run on raw inputs alone (a run's feature list may then be empty)
    needs_features: ClassVar[bool] = True
    #: True when every row the model fits or predicts must carry each raw input it reads (text on
    #: every row, a readable audio file on every row): ``check`` and ``train-all`` refuse data where
    #: one lacks it, naming the rows, before any job starts
    raw_required: ClassVar[bool] = False
    #: True when a job saves the fitted model beside its result (``<job>.model``, through
    #: :meth:`save`); may be an instance property (e.g. from a ``keep_weights`` parameter)
    keeps_model: ClassVar[bool] = False

    @classmethod
    def required_raw(cls, params: Mapping[str, Any], raw: Sequence[str]) -> tuple[str, ...]:
        """Of the raw inputs ``raw`` a run with ``params`` reads, those every row must carry (what
        ``check`` and ``train-all`` verify before any job starts): all of them when
        :attr:`raw_required`, none otherwise; a family may relax it by its parameters."""
        return tuple(raw) if cls.raw_required else ()

    def __init__(
        self,
        *,
        targets: Mapping[str, int],
        feature_dims: Mapping[str, int],
        modalities: Mapping[str, str],
        seed: int = 0,
        device: str = "auto",
        **params: Any,
    ) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ModelError(
                f"model {self.name!r}: unknown parameter(s) {unknown}; allowed: {sorted(self.defaults)}"
            )
        self.targets = dict(targets)
        self.feature_dims = dict(feature_dims)
        self.modalities = dict(modalities)
        self.seed = int(seed)
        self.device = device
        self.params = {**self.defaults, **params}
        bad = [r for r in self.raw_inputs if r not in RAW_KINDS]
        if bad:
            raise ModelError(f"model {self.name!r}: raw_inputs {bad} are not among {list(RAW_KINDS)}")

    #: Optuna search space of ``mer-ensemble tune``: parameter -> distribution
    #: (``{"type": "int" | "float" | "categorical", "low", "high", "log", "step", "choices"}``)
    search_space: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def prior_seconds(cls, params: dict[str, Any], work: WorkSize) -> float:
        """Seconds of one fold job before anything was measured (``params``: the family's
        defaults with the run's values on top). Only an ordering and a first guess for
        ``train-all --time-limit``: every measured fold replaces it. This default grows with
        the rows, the input width and the classes; the shipped families override it."""
        return 1.0 + 1e-7 * work.n_fit * work.dim * work.n_outputs

    @classmethod
    def resolve_paths(cls, params: dict[str, Any], resolve: Callable[[str], Any]) -> dict[str, Any]:
        """``params`` with the file or folder paths they name passed through ``resolve`` (a relative
        path in a config resolves from the config file's folder); the default names none."""
        return params

    @classmethod
    def n_weights(cls, params: dict[str, Any], dims: Sequence[int], n_modalities: int) -> int | None:
        """The approximate weight count of the family's network for inputs of widths ``dims``
        (None: the family has no network)."""
        return None

    @property
    def raw_keys(self) -> list[str]:
        """The input keys of the raw inputs this model reads (``raw:text``, ``raw:audio``)."""
        return [raw_key(kind) for kind in self.raw_inputs]

    def fit(
        self,
        X: Inputs,
        y: Labels,
        X_val: Inputs | None = None,
        y_val: Labels | None = None,
        *,
        score_fn: ScoreFn | None = None,
        X_unlabeled: Inputs | None = None,
        X_variants: Mapping[str, Sequence[Any]] | None = None,
        groups: np.ndarray | None = None,
        val_candidates: np.ndarray | None = None,
    ) -> MerModel:
        """Fit on ``X``/``y``; ``X_val``/``y_val`` only choose the stopping point
        (``score_fn(y_val, proba)`` higher is better). ``X_unlabeled`` rows carry no
        labels (for semi-supervised losses); ``X_variants`` are noisy versions of training
        features (for noise-robust training); ``groups``/``val_candidates`` steer inner splits
        (see :class:`FitData`). Checks the inputs and labels, then calls the family's ``_fit``,
        which records in ``selected_`` what it chose inside the fold. Returns ``self``."""
        n = check_inputs(X, self.feature_dims, self.name, raw=self.raw_keys)
        labels = check_labels(y, self.targets, n, self.name)
        if (X_val is None) != (y_val is None):
            raise DataError(f"model {self.name!r}: give X_val and y_val together")
        val_labels = None
        if X_val is not None:
            n_val = check_inputs(X_val, self.feature_dims, self.name, raw=self.raw_keys)
            val_labels = check_labels(y_val, self.targets, n_val, self.name)
        for what, arr in (("groups", groups), ("val_candidates", val_candidates)):
            if arr is not None and len(arr) != n:
                raise DataError(f"model {self.name!r}: {what} has {len(arr)} rows, the inputs have {n}")
        self.selected_: dict[str, Any] = {}
        self._fit(FitData(X, labels, n, X_val, val_labels, score_fn, X_unlabeled, X_variants,
                          None if groups is None else np.asarray(groups),
                          None if val_candidates is None else np.asarray(val_candidates, dtype=bool)))
        return self

    @abstractmethod
    def _fit(self, data: FitData) -> None:
        """Learn from checked inputs (see :class:`FitData`) and set the fitted state."""

    @abstractmethod
    def predict_proba(self, X: Inputs) -> Probas:
        """Class probabilities per target, each ``(n, n_classes)``, rows summing to 1."""

    @abstractmethod
    def save(self, path: str) -> None:
        """Write the fitted model to ``path`` (a file)."""

    @classmethod
    @abstractmethod
    def load(cls, path: str) -> MerModel:
        """Read a model written by :meth:`save`."""
