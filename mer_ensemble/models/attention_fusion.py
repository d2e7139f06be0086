"""``attention_fusion``: the MER2024 baseline for any number of modalities (features of
one modality are concatenated first): an encoder per modality, learned modality weights,
weighted sum, one head per target (network:
:class:`~mer_ensemble.models.nets.attention_fusion.AttentionFusionNet`). Inputs, scaling and
the seed methods' parameters as for every fusion family (:mod:`mer_ensemble.models._fusion`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mer_ensemble.models._base import Inputs
from mer_ensemble.models._common import check_choice, check_number
from mer_ensemble.models._fusion import (
    FUSION_CANDIDATES,
    FUSION_SEARCH_SPACE,
    SEED_METHOD_DEFAULTS,
    SEQ_ENCODERS,
    FusionModel,
    check_heads,
    encode_group,
)
from mer_ensemble.models._inputs import group_by_modality
from mer_ensemble.models._registry import register_model
from mer_ensemble.models._torch import TRAINER_DEFAULTS

if TYPE_CHECKING:
    from torch import nn

__all__ = ["AttentionFusionModel"]


class AttentionFusionModel(FusionModel):
    """MER2024 baseline attention fusion (see :class:`~mer_ensemble.models.nets.attention_fusion.AttentionFusionNet`).

    A modality with at least one frame-level feature is encoded as a sequence
    (``seq_encoder``: LSTM or Transformer, masked mean pooling); otherwise by the
    baseline's three-layer MLP.
    """

    @classmethod
    def square_layers(cls, params: dict[str, Any], n_modalities: int) -> int:
        """Three per modality encoder plus the fusion layers."""
        return 3 * n_modalities + 3

    def _check_params(self) -> None:
        p, name = self.params, self.name
        check_number(name, "hidden", p["hidden"], low=1, integer=True)
        check_number(name, "dropout", p["dropout"], low=0, high=0.95)
        check_choice(name, "standardize", p["standardize"], (True, False))
        check_choice(name, "seq_encoder", p["seq_encoder"], SEQ_ENCODERS)
        if p["seq_encoder"] == "transformer":
            check_heads(name, p["hidden"], 4)
        self.groups = group_by_modality(self.feature_dims, self.modalities)
        self._check_seed_params()

    def _module_config(self, X: Inputs) -> dict[str, Any]:
        modalities = []
        for modality, features in self.groups.items():
            level = "frame" if any(self.levels_[f] == "frame" for f in features) else "utt"
            modalities.append([modality, int(sum(self.feature_dims[f] for f in features)), level])
        return {
            "modalities": modalities,
            "hidden": int(self.params["hidden"]),
            "dropout": float(self.params["dropout"]),
            "seq_encoder": self.params["seq_encoder"],
            "targets": [[t, int(c)] for t, c in self.targets.items()],
            **self._seed_config(),
            **self._scaling_config(X),
        }

    def _encode(self, X: Inputs) -> dict[str, np.ndarray]:
        """Per modality ``(n, D_m)``, or ``(n, T, D_m)`` plus ``<modality>:lengths``."""
        X = self._scaled(X)
        out: dict[str, np.ndarray] = {}
        for modality, _, level in self.config_["modalities"]:
            out.update(encode_group(X, self.groups[modality], modality, level == "frame"))
        return out

    def _build_module(self, config: dict[str, Any]) -> nn.Module:
        from mer_ensemble.models.nets.attention_fusion import AttentionFusionNet

        return AttentionFusionNet(
            [(m, d, level) for m, d, level in config["modalities"]],
            config["hidden"],
            config["dropout"],
            [(t, c) for t, c in config["targets"]],
            seq_encoder=config["seq_encoder"],
            **self._seed_kwargs(config),
        )


AttentionFusionModel.defaults = {
    "hidden": 128,
    "dropout": 0.3,
    "standardize": True,
    "seq_encoder": "lstm",
    **SEED_METHOD_DEFAULTS,
    **TRAINER_DEFAULTS,
    "candidates": FUSION_CANDIDATES,
}

AttentionFusionModel.search_space = dict(FUSION_SEARCH_SPACE)

register_model("attention_fusion")(AttentionFusionModel)
