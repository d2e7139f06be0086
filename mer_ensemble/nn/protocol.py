"""The typed interface between the trainer and the networks it trains.

A network is any ``torch.nn.Module`` whose ``forward`` takes a dict of input tensors
(rows first) and returns ``{target: logits (b, n_classes)}``. A network that changes how
it is trained implements :class:`TrainableModule`: its ``training_hooks()`` returns a
:class:`TrainingHooks` naming the pieces it replaces or adds. Because the hooks are the
fields of one frozen dataclass, a misspelt hook is an error at construction instead of a
silent fall-back to the default loss. A module without ``training_hooks`` trains with the
defaults (:func:`~mer_ensemble.nn.losses.supervised_loss`, no augmentation, no unlabelled term).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["AugmentFn", "LossFn", "TrainableModule", "TrainingHooks", "UnlabeledLossFn", "hooks_of"]

#: ``loss(outputs {target: (b, C)}, labels {target: (b,)}, class_weights {target: (C,)}) -> scalar``
LossFn = Callable[[Mapping[str, "Tensor"], Mapping[str, "Tensor"], Mapping[str, "Tensor"]], "Tensor"]
#: ``augment(inputs) -> inputs``, applied to training batches only
AugmentFn = Callable[[dict[str, "Tensor"]], dict[str, "Tensor"]]
#: ``unlabeled_loss(inputs) -> scalar`` on a batch of unlabelled rows, added to the loss
UnlabeledLossFn = Callable[[dict[str, "Tensor"]], "Tensor"]


@dataclass(frozen=True)
class TrainingHooks:
    """What a network changes in its training; ``None`` keeps the trainer's default.

    ``loss`` replaces the default loss (cross-entropy summed over targets, unknown labels
    masked); ``augment`` transforms each training batch (modality dropout, feature noise);
    ``unlabeled_loss`` adds a term computed on a batch of unlabelled rows every step
    (consistency losses) when the trainer is given unlabelled rows.
    """

    loss: LossFn | None = None
    augment: AugmentFn | None = None
    unlabeled_loss: UnlabeledLossFn | None = None


@runtime_checkable
class TrainableModule(Protocol):
    """A network that tells the trainer how it is trained (see the module docstring)."""

    def __call__(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]: ...

    def training_hooks(self) -> TrainingHooks: ...


def hooks_of(module: Any) -> TrainingHooks:
    """The hooks of ``module``: its ``training_hooks()`` when it is a :class:`TrainableModule`, else the defaults."""
    if isinstance(module, TrainableModule):
        hooks = module.training_hooks()
        if not isinstance(hooks, TrainingHooks):
            from mer_ensemble.errors import ModelError

            raise ModelError(
                f"{type(module).__name__}.training_hooks() returned {type(hooks).__name__}, not TrainingHooks"
            )
        return hooks
    return TrainingHooks()
