"""Blenders by name: the :data:`BLENDERS` registry, :func:`register_blender` and :func:`make_blender`.

A blender module registers its class with ``@register_blender("name")``; the package
``__init__`` imports every blender module, so a new blender is one file plus its import
there. Per-method settings (``blend.params.<name>`` in a config) are the class's
``__init__`` parameters and pass straight to it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from mer_ensemble.ensemble._base import Blender
from mer_ensemble.errors import BlendError

__all__ = ["BLENDERS", "blender_params", "list_blenders", "make_blender", "register_blender"]

#: name -> blender class (its ``__init__`` takes the method's settings as keyword arguments)
BLENDERS: dict[str, type[Blender]] = {}

B = TypeVar("B", bound=type[Blender])


def register_blender(name: str) -> Callable[[B], B]:
    """Class decorator: register a :class:`Blender` subclass as ``name`` (sets ``cls.name``).

    A name may be registered once; :class:`BlendError` otherwise.
    """

    def decorate(cls: B) -> B:
        if not (isinstance(cls, type) and issubclass(cls, Blender)):
            raise BlendError(f"register_blender expects a Blender subclass, got {cls!r}")
        if name in BLENDERS and BLENDERS[name] is not cls:
            raise BlendError(f"blender {name!r} is already registered")
        cls.name = name
        cls.label = cls.label or name
        BLENDERS[name] = cls
        return cls

    return decorate


def list_blenders() -> list[str]:
    """Registered blender names, sorted."""
    return sorted(BLENDERS)


def blender_params(name: str) -> list[str]:
    """The settings blender ``name`` accepts (its ``__init__``'s named parameters)."""
    if name not in BLENDERS:
        raise BlendError(f"unknown blender {name!r}; expected one of {', '.join(list_blenders())}")
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    signature = inspect.signature(BLENDERS[name].__init__)
    return [p.name for p in signature.parameters.values() if p.name != "self" and p.kind in named]


def make_blender(name: str, *, class_bias: bool = False, **params: Any) -> Blender:
    """Create the blender registered as ``name`` with ``params`` (``None`` values are dropped).

    ``class_bias=True`` wraps it in :class:`~mer_ensemble.ensemble.ClassBias` (per-class bias
    tuned after blending). Raises :class:`BlendError` naming an unknown blender or parameter
    and the valid ones.
    """
    accepted = blender_params(name)
    params = {k: v for k, v in params.items() if v is not None}
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise BlendError(f"blender {name!r}: unknown parameter(s) {unknown}; allowed: {accepted}")
    blender = BLENDERS[name](**params)
    if class_bias:
        from mer_ensemble.ensemble._bias import ClassBias

        return ClassBias(blender)
    return blender
