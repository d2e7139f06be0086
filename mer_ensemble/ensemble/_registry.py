"""Blenders by name: the :data:`BLENDERS` registry and :func:`make_blender`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mer_ensemble.ensemble._base import Blender
from mer_ensemble.ensemble._bias import ClassBias
from mer_ensemble.ensemble._greedy import GreedyBlender
from mer_ensemble.ensemble._optuna import OptunaWeightsBlender
from mer_ensemble.ensemble._simple import BestSingle, HardVoteBlender, MeanBlender
from mer_ensemble.ensemble._stacking import StackingBlender
from mer_ensemble.errors import BlendError

__all__ = ["BLENDERS", "list_blenders", "make_blender", "register_blender"]

#: name -> factory taking the blender's hyper-parameters as keyword arguments
BLENDERS: dict[str, Callable[..., Blender]] = {
    "best": BestSingle,
    "mean": MeanBlender,
    "vote": HardVoteBlender,
    "greedy": GreedyBlender,
    "optuna": OptunaWeightsBlender,
    "stacking": StackingBlender,
}


def list_blenders() -> list[str]:
    """Registered blender names, sorted."""
    return sorted(BLENDERS)


def register_blender(name: str, factory: Callable[..., Blender]) -> Callable[..., Blender]:
    """Add ``factory`` under ``name`` and return it; an existing name raises :class:`BlendError`."""
    if name in BLENDERS:
        raise BlendError(f"blender {name!r} is already registered")
    BLENDERS[name] = factory
    return factory


def _accepted(factory: Callable[..., Blender]) -> list[str]:
    """Keyword parameters ``factory`` accepts (a class: its ``__init__``'s named parameters)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in inspect.signature(target).parameters.values() if p.name != "self" and p.kind in named]


def make_blender(name: str, *, class_bias: bool = False, **params: Any) -> Blender:
    """Create the blender registered as ``name`` with ``params`` (``None`` values are dropped).

    ``class_bias=True`` wraps it in :class:`ClassBias` (per-class bias tuned after blending).
    Raises :class:`BlendError` naming an unknown blender or parameter and the valid ones.
    """
    if name not in BLENDERS:
        raise BlendError(f"unknown blender {name!r}; expected one of {', '.join(list_blenders())}")
    factory = BLENDERS[name]
    params = {k: v for k, v in params.items() if v is not None}
    accepted = _accepted(factory)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise BlendError(f"blender {name!r}: unknown parameter(s) {unknown}; allowed: {accepted}")
    blender = factory(**params)
    return ClassBias(blender) if class_bias else blender
