"""Model families and their registry.

>>> from mer_ensemble.models import create_model, list_models
>>> list_models()
['attention_fusion', 'audio_text_fusion', 'finetune', 'linear', 'mlp', 'xgboost']
>>> model = create_model("mlp", targets={"discrete": 6}, feature_dims={"hubert": 1024},
...                      modalities={"hubert": "audio"}, hidden=128)

Importing this package registers every family but imports neither torch nor
xgboost; those load the first time a model is fitted or loaded.
"""

from __future__ import annotations

# the family modules register themselves on import
from mer_ensemble.models import attention_fusion, audio_text_fusion, finetune, linear, mlp, xgb  # noqa: F401
from mer_ensemble.models._base import Inputs, Labels, MerModel, Probas, ScoreFn, WorkSize
from mer_ensemble.models._registry import (
    create_model,
    get_model_class,
    list_models,
    model_defaults,
    model_ref,
    register_model,
    resolve_model,
)
from mer_ensemble.models._torch import TorchModel

__all__ = [
    "Inputs",
    "Labels",
    "MerModel",
    "Probas",
    "ScoreFn",
    "TorchModel",
    "WorkSize",
    "create_model",
    "get_model_class",
    "list_models",
    "model_defaults",
    "model_ref",
    "register_model",
    "resolve_model",
]
