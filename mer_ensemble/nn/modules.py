"""A base class for the project's networks: an ``nn.Module`` that implements :class:`TrainableModule`."""

from __future__ import annotations

from torch import nn

from mer_ensemble.nn.protocol import TrainingHooks

__all__ = ["TrainableNet"]


class TrainableNet(nn.Module):
    """``nn.Module`` with ``training_hooks()`` (no hooks: the trainer's defaults). Networks that
    change their training override :meth:`training_hooks`."""

    def training_hooks(self) -> TrainingHooks:
        return TrainingHooks()
