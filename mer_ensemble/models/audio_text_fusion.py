"""``audio_text_fusion``: audio and text fused early and trained jointly, as the MER2024
runner-up did; cross-attention between audio frames and text tokens for frame-level input
(network: :class:`~mer_ensemble.models.nets.audio_text_fusion.AudioTextFusionNet`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mer_ensemble.errors import ModelError
from mer_ensemble.models._base import Inputs
from mer_ensemble.models._common import check_choice, check_number
from mer_ensemble.models._fusion import (
    FUSION_CANDIDATES,
    FUSION_SEARCH_SPACE,
    SEED_METHOD_DEFAULTS,
    FusionModel,
    check_heads,
    encode_group,
)
from mer_ensemble.models._inputs import group_by_modality
from mer_ensemble.models._registry import register_model
from mer_ensemble.models._torch import TRAINER_DEFAULTS

if TYPE_CHECKING:
    from torch import nn

__all__ = ["AudioTextFusionModel"]


class AudioTextFusionModel(FusionModel):
    """Early audio+text fusion (see :class:`~mer_ensemble.models.nets.audio_text_fusion.AudioTextFusionNet`).

    Needs features of modality ``audio`` and ``text`` and no other. When any of them is
    frame-level, both sides are sequences (an utterance-level feature counts as one step)
    and fused by cross-attention; otherwise by a joint MLP.
    """

    @classmethod
    def square_layers(cls, params: dict[str, Any], n_modalities: int) -> int:
        """Cross-attention and the fused head."""
        return 3

    def _check_params(self) -> None:
        p, name = self.params, self.name
        check_number(name, "hidden", p["hidden"], low=1, integer=True)
        check_number(name, "dropout", p["dropout"], low=0, high=0.95)
        check_choice(name, "standardize", p["standardize"], (True, False))
        check_number(name, "num_heads", p["num_heads"], low=1, integer=True)
        check_heads(name, p["hidden"], p["num_heads"])
        self.groups = group_by_modality(self.feature_dims, self.modalities)
        missing = [m for m in ("audio", "text") if m not in self.groups]
        others = {m: f for m, f in self.groups.items() if m not in ("audio", "text")}
        if missing or others:
            raise ModelError(
                f"model {name!r} needs features of modality 'audio' and 'text' only; "
                f"missing modality {missing}, other modalities {others}; given modalities: {self.modalities}"
            )
        self._check_seed_params()

    def _module_config(self, X: Inputs) -> dict[str, Any]:
        sequence = any(level == "frame" for level in self.levels_.values())
        return {
            "audio_dim": int(sum(self.feature_dims[f] for f in self.groups["audio"])),
            "text_dim": int(sum(self.feature_dims[f] for f in self.groups["text"])),
            "hidden": int(self.params["hidden"]),
            "dropout": float(self.params["dropout"]),
            "num_heads": int(self.params["num_heads"]),
            "sequence": sequence,
            "targets": [[t, int(c)] for t, c in self.targets.items()],
            **self._seed_config(),
            **self._scaling_config(X),
        }

    def _encode(self, X: Inputs) -> dict[str, np.ndarray]:
        """``audio`` and ``text``: ``(n, D)`` each, or ``(n, T, D)`` plus lengths."""
        X = self._scaled(X)
        sequence = self.config_["sequence"]
        out = encode_group(X, self.groups["audio"], "audio", sequence)
        out.update(encode_group(X, self.groups["text"], "text", sequence))
        return out

    def _build_module(self, config: dict[str, Any]) -> nn.Module:
        from mer_ensemble.models.nets.audio_text_fusion import AudioTextFusionNet

        return AudioTextFusionNet(
            config["audio_dim"],
            config["text_dim"],
            config["hidden"],
            config["dropout"],
            [(t, c) for t, c in config["targets"]],
            sequence=config["sequence"],
            num_heads=config["num_heads"],
            **self._seed_kwargs(config),
        )


AudioTextFusionModel.defaults = {
    "hidden": 128,
    "standardize": True,
    "dropout": 0.3,
    "num_heads": 4,
    **SEED_METHOD_DEFAULTS,
    **TRAINER_DEFAULTS,
    "candidates": FUSION_CANDIDATES,
}

AudioTextFusionModel.search_space = dict(FUSION_SEARCH_SPACE)

register_model("audio_text_fusion")(AudioTextFusionModel)
