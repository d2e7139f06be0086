"""Losses of the trainer: cross-entropy with unknown labels masked out, summed over targets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["masked_cross_entropy", "supervised_loss"]


def masked_cross_entropy(logits: Tensor, labels: Tensor, weight: Tensor | None = None) -> Tensor:
    """Cross-entropy averaged over the rows whose label is not ``-1``.

    ``logits`` ``(b, C)``, ``labels`` ``(b,)`` int64, ``weight`` ``(C,)`` or None. With
    ``weight`` the mean is weighted like ``torch.nn.functional.cross_entropy``. A batch with
    no known label gives 0 (without a host-device synchronisation).
    """
    import torch.nn.functional as F

    known = labels >= 0
    total = F.cross_entropy(logits.float(), labels, weight=weight, ignore_index=-1, reduction="sum")
    if weight is None:
        return total / known.sum().clamp(min=1)
    return total / (weight[labels.clamp(min=0)] * known).sum().clamp(min=1e-12)


def supervised_loss(
    outputs: Mapping[str, Tensor], labels: Mapping[str, Tensor], class_weights: Mapping[str, Tensor] | None = None
) -> Tensor:
    """Sum over targets of :func:`masked_cross_entropy` (the trainer's default loss)."""
    class_weights = class_weights or {}
    losses = [masked_cross_entropy(outputs[t], y, class_weights.get(t)) for t, y in labels.items()]
    return losses[0] if len(losses) == 1 else sum(losses[1:], losses[0])
