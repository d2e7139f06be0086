"""``mlp``: a multi-layer perceptron on the concatenation of the given features.

Usually unimodal (one feature, or the features of one modality); any subset works.
Inputs are standardised with statistics of the training rows (kept in the weights).
Frame-level inputs are mean-pooled. Network: :class:`~mer_ensemble.models.nets.mlp.MLPNet`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mer_ensemble.models._base import Inputs
from mer_ensemble.models._common import check_choice, check_number
from mer_ensemble.models._inputs import concat_pooled
from mer_ensemble.models._registry import register_model
from mer_ensemble.models._torch import TRAINER_DEFAULTS, TorchModel

if TYPE_CHECKING:
    from torch import nn

__all__ = ["MLPModel"]


class MLPModel(TorchModel):
    """[Linear → ReLU → Dropout] × ``layers`` of width ``hidden``, one head per target."""

    input_level = "utt"

    @classmethod
    def square_layers(cls, params: dict[str, Any], n_modalities: int) -> int:
        return int(params.get("layers", 2)) - 1

    def _check_params(self) -> None:
        p, name = self.params, self.name
        check_number(name, "hidden", p["hidden"], low=1, integer=True)
        check_number(name, "layers", p["layers"], low=1, integer=True)
        check_number(name, "dropout", p["dropout"], low=0, high=0.95)
        check_choice(name, "standardize", p["standardize"], (True, False))

    def _module_config(self, X: Inputs) -> dict[str, Any]:
        return {
            "dim": int(sum(self.feature_dims.values())),
            "hidden": int(self.params["hidden"]),
            "layers": int(self.params["layers"]),
            "dropout": float(self.params["dropout"]),
            "targets": [[t, int(c)] for t, c in self.targets.items()],
        }

    def _encode(self, X: Inputs) -> dict[str, np.ndarray]:
        """``{"x": (n, sum of D)}``."""
        return {"x": concat_pooled(X, list(self.feature_dims))}

    def _build_module(self, config: dict[str, Any]) -> nn.Module:
        from mer_ensemble.models.nets.mlp import MLPNet

        targets = [(t, c) for t, c in config["targets"]]
        return MLPNet(config["dim"], config["hidden"], config["layers"], config["dropout"], targets)

    def _prepare_module(self, module: nn.Module, inputs: dict[str, np.ndarray]) -> None:
        import torch

        if self.params["standardize"]:
            module.standardize.set_statistics(torch.from_numpy(np.asarray(inputs["x"], dtype=np.float32)))


MLPModel.search_space = {
    "hidden": {"type": "categorical", "choices": [64, 128, 256, 512]},
    "layers": {"type": "int", "low": 1, "high": 3},
    "dropout": {"type": "float", "low": 0.0, "high": 0.6},
    "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
}

MLPModel.defaults = {
    "hidden": 256,
    "layers": 2,
    "dropout": 0.3,
    "standardize": True,
    **TRAINER_DEFAULTS,
    # width, depth, dropout and weight decay: the three configurations most often chosen in
    # inner-CV measurements across EmoDB, MELD, both demo layouts and synthetic sets (docs/benchmarks.md)
    "candidates": [
        {},
        {"hidden": 256, "layers": 1, "dropout": 0.5, "weight_decay": 1e-3},
        {"hidden": 128, "layers": 2, "dropout": 0.2, "weight_decay": 1e-3},
    ],
}

register_model("mlp")(MLPModel)
