"""The contract every registered model family fulfils.

A model is created by the registry with the shapes of the problem and its own
hyper-parameters, fitted on one fold's training rows (validation rows are for
early stopping only) and asked for class probabilities per target.

Inputs ``X`` map a feature name to either an ``(n, D)`` float32 array
(utterance level) or a :class:`~mer_ensemble.data.dataset.Frames` (frame level,
only for models whose ``input_level`` is ``"frame"``). Labels ``y`` map a
target name to an ``(n,)`` int64 array with ``-1`` where the label is unknown
(masked out of the loss).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from mer_ensemble.errors import ModelError

__all__ = ["MerModel", "ScoreFn", "Inputs", "Labels", "Probas"]

Inputs = Mapping[str, Any]
Labels = Mapping[str, np.ndarray]
Probas = dict[str, np.ndarray]
ScoreFn = Callable[[Labels, Mapping[str, np.ndarray]], float]


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

    @abstractmethod
    def fit(
        self,
        X: Inputs,
        y: Labels,
        X_val: Inputs | None = None,
        y_val: Labels | None = None,
        *,
        score_fn: ScoreFn | None = None,
        X_unlabeled: Inputs | None = None,
    ) -> MerModel:
        """Fit on ``X``/``y``; ``X_val``/``y_val`` only choose the stopping epoch
        (``score_fn(y_val, proba)`` higher is better). ``X_unlabeled`` rows carry no
        labels (for semi-supervised losses). Returns ``self``."""

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
