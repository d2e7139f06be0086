"""The model registry: one module-level dict from a family name to its class (its public names are
those :mod:`mer_ensemble.models` exports).

Family modules decorate their :class:`~mer_ensemble.models._base.MerModel` subclass
with :func:`register_model`; :func:`create_model` builds one by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from mer_ensemble.errors import ModelError
from mer_ensemble.models._base import MerModel

_MODELS: dict[str, type[MerModel]] = {}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

M = TypeVar("M", bound=type[MerModel])


def _default_name(cls: type) -> str:
    """``AttentionFusionModel`` -> ``attention_fusion``."""
    stem = cls.__name__.removesuffix("Model") or cls.__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "_", stem).lower()


@overload
def register_model(name_or_cls: M) -> M: ...


@overload
def register_model(name_or_cls: str | None = None) -> Callable[[M], M]: ...


def register_model(name_or_cls: str | type[MerModel] | None = None) -> Any:
    """Register a model family; sets ``cls.name``.

    Use as ``@register_model("linear")`` or bare ``@register_model`` (the name is the
    snake-cased class name without a ``Model`` suffix). A name may be registered once.
    """

    def decorate(cls: M, name: str | None = None) -> M:
        if not (isinstance(cls, type) and issubclass(cls, MerModel)):
            raise ModelError(f"register_model expects a MerModel subclass, got {cls!r}")
        name = name or _default_name(cls)
        if not _NAME.match(name):
            raise ModelError(f"model name {name!r} must be lowercase letters, digits and '_'")
        if name in _MODELS and _MODELS[name] is not cls:
            raise ModelError(f"model {name!r} is already registered by {_MODELS[name].__qualname__}")
        cls.name = name
        _MODELS[name] = cls
        return cls

    if isinstance(name_or_cls, type):
        return decorate(name_or_cls)
    return lambda cls: decorate(cls, name_or_cls)


def list_models() -> list[str]:
    """Names of the registered model families, sorted."""
    return sorted(_MODELS)


def get_model_class(name: str) -> type[MerModel]:
    """The class registered under ``name``; the error lists the valid names."""
    try:
        return _MODELS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; registered models: {', '.join(list_models())}") from None


def model_ref(name: str) -> str:
    """Where the class registered as ``name`` lives, ``module:QualName`` (for :func:`resolve_model`)."""
    cls = get_model_class(name)
    return f"{cls.__module__}:{cls.__qualname__}"


def resolve_model(name: str, ref: str | None = None) -> type[MerModel]:
    """The class registered as ``name``; in a fresh process (a worker) where nothing registered
    it yet, imported from ``ref`` (:func:`model_ref`) and registered, so that a family registered
    outside the package (a plug-in or a test module) also runs in worker processes."""
    if name in _MODELS or not ref:
        return get_model_class(name)
    import importlib

    module_name, _, qualname = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"model {name!r}: cannot import its class {ref} here ({exc})") from None
    if name not in _MODELS:
        register_model(name)(obj)
    return get_model_class(name)


def model_defaults(name: str) -> dict[str, Any]:
    """A copy of the default hyper-parameters of model ``name``."""
    return dict(get_model_class(name).defaults)


def create_model(
    name: str,
    *,
    targets: Mapping[str, int],
    feature_dims: Mapping[str, int],
    modalities: Mapping[str, str],
    seed: int = 0,
    device: str = "auto",
    **params: Any,
) -> MerModel:
    """Build model ``name`` for a problem; ``params`` override its defaults
    (``None`` values are dropped, so a config can leave a parameter unset).

    ``targets``: target -> n_classes; ``feature_dims``: feature -> D; ``modalities``:
    feature -> modality. Unknown names or parameters raise :class:`ModelError`.
    """
    cls = get_model_class(name)
    overrides = {k: v for k, v in params.items() if v is not None}
    return cls(targets=targets, feature_dims=feature_dims, modalities=modalities, seed=seed, device=device, **overrides)
