"""Learning-rate schedules and parameter groups for fine-tuning pretrained encoders.

* :func:`warmup_linear`: the factor of the base rate at a step: a linear warm-up from 0 over
  the first steps, then a linear decay to 0 at the last step (BERT's schedule, transformers'
  ``get_linear_schedule_with_warmup``);
* :func:`layer_index`: the depth of a parameter in a transformer encoder, read from its name
  (embeddings and convolutional front ends 0, ``layer.<i>`` / ``layers.<i>`` i + 1, the rest on
  top);
* :func:`layerwise_groups`: optimiser groups with layer-wise learning-rate decay: the top layer
  trains at ``lr``, each layer below at ``decay`` times the one above, the task head at its own
  rate; no weight decay on biases and normalisation weights.

Nothing here imports torch at import time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["layer_index", "layerwise_groups", "warmup_linear"]

_LAYER = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)\.")
_BOTTOM = ("embed", "feature_extractor", "feature_projection", "conv1.", "conv2.", "masked_spec_embed")
_NO_DECAY = ("bias", "layernorm", "layer_norm", "norm.", "ln_")


def warmup_linear(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """``factor(step)``: ``step / warmup_steps`` during the warm-up, then linear from 1 down to 0
    at ``total_steps`` (never below 0)."""
    total, warmup = max(int(total_steps), 1), max(int(warmup_steps), 0)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(total - warmup, 1))

    return factor


def layer_index(name: str, n_layers: int) -> int:
    """Depth of parameter ``name`` in an encoder of ``n_layers`` blocks: 0 for the embeddings
    (and audio front ends), ``i + 1`` for block ``i``, ``n_layers + 1`` for what sits on top
    (pooler, final norm)."""
    match = _LAYER.search(name)
    if match:
        return min(int(match.group(1)) + 1, n_layers)
    lowered = name.lower()
    if any(part in lowered for part in _BOTTOM):
        return 0
    return n_layers + 1


def layerwise_groups(
    encoder_params: Iterable[tuple[str, Tensor]],
    head_params: Iterable[tuple[str, Tensor]],
    *,
    n_layers: int,
    lr: float,
    decay: float,
    head_lr: float,
    weight_decay: float,
) -> list[dict[str, Any]]:
    """Optimiser parameter groups (only parameters with ``requires_grad``).

    An encoder parameter at depth ``d`` (:func:`layer_index`) trains at
    ``lr * decay ** max(n_layers - d, 0)`` (the last block and what sits on top at ``lr``, the
    embeddings at ``lr * decay ** n_layers``); head parameters at ``head_lr``.
    Biases and normalisation weights get no weight decay. Each group carries ``depth``
    (``-1`` for the head) for inspection.
    """
    groups: dict[tuple[int, bool], dict[str, Any]] = {}

    def add(name: str, param: Tensor, depth: int, rate: float) -> None:
        if not param.requires_grad:
            return
        decayed = not (param.ndim < 2 or any(part in name.lower() for part in _NO_DECAY))
        group = groups.setdefault((depth, decayed), {"params": [], "lr": rate, "depth": depth,
                                                     "weight_decay": weight_decay if decayed else 0.0})
        group["params"].append(param)

    for name, param in encoder_params:
        depth = layer_index(name, n_layers)
        add(name, param, depth, lr * decay ** max(n_layers - depth, 0))
    for name, param in head_params:
        add(name, param, -1, head_lr)
    return [groups[key] for key in sorted(groups)]
