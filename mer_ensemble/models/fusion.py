"""Multimodal fusion networks trained end to end.

``attention_fusion``: the MER2024 baseline for any number of modalities (features of
one modality are concatenated first): an encoder per modality, learned modality weights,
weighted sum, one head per target.

``audio_text_fusion``: audio and text fused early and trained jointly, as the MER2024
runner-up did; cross-attention between audio frames and text tokens for frame-level input.

Both read frame-level features as Frames (``input_level = "frame"``) and utterance-level
ones as ``(n, D)`` arrays. Networks: :mod:`mer_ensemble.models._blocks`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mer_ensemble.errors import ModelError
from mer_ensemble.models._base import Inputs
from mer_ensemble.models._common import check_choice, check_number
from mer_ensemble.models._inputs import concat_frames, concat_pooled, group_by_modality, lengths_key
from mer_ensemble.models._registry import register_model
from mer_ensemble.models._torch import TRAINER_DEFAULTS, TorchModel

if TYPE_CHECKING:
    from torch import nn

__all__ = ["AttentionFusionModel", "AudioTextFusionModel"]

SEQ_ENCODERS = ("lstm", "transformer")


def _encode_group(X: Inputs, features: list[str], name: str, sequence: bool) -> dict[str, np.ndarray]:
    """One modality's input: ``{name: (n, D)}``, or ``{name: (n, T, D), name:lengths: (n,)}``."""
    if not sequence:
        return {name: concat_pooled(X, features)}
    frames = concat_frames(X, features)
    return {name: frames.x, lengths_key(name): frames.lengths}


def _check_heads(model: str, hidden: int, num_heads: int) -> None:
    if hidden % num_heads:
        raise ModelError(f"model {model!r}: hidden={hidden} must be divisible by num_heads={num_heads}")


class AttentionFusionModel(TorchModel):
    """MER2024 baseline attention fusion (see :class:`~mer_ensemble.models._blocks.AttentionFusionNet`).

    A modality with at least one frame-level feature is encoded as a sequence
    (``seq_encoder``: LSTM or Transformer, masked mean pooling); otherwise by the
    baseline's three-layer MLP.
    """

    input_level = "frame"
    predict_batch_size = 256

    def _check_params(self) -> None:
        p, name = self.params, self.name
        check_number(name, "hidden", p["hidden"], low=1, integer=True)
        check_number(name, "dropout", p["dropout"], low=0, high=0.95)
        check_choice(name, "seq_encoder", p["seq_encoder"], SEQ_ENCODERS)
        if p["seq_encoder"] == "transformer":
            _check_heads(name, p["hidden"], 4)
        self.groups = group_by_modality(self.feature_dims, self.modalities)

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
        }

    def _encode(self, X: Inputs) -> dict[str, np.ndarray]:
        """Per modality ``(n, D_m)``, or ``(n, T, D_m)`` plus ``<modality>:lengths``."""
        out: dict[str, np.ndarray] = {}
        for modality, _, level in self.config_["modalities"]:
            out.update(_encode_group(X, self.groups[modality], modality, level == "frame"))
        return out

    def _build_module(self, config: dict[str, Any]) -> nn.Module:
        from mer_ensemble.models._blocks import AttentionFusionNet

        return AttentionFusionNet(
            [(m, d, level) for m, d, level in config["modalities"]],
            config["hidden"],
            config["dropout"],
            [(t, c) for t, c in config["targets"]],
            seq_encoder=config["seq_encoder"],
        )


class AudioTextFusionModel(TorchModel):
    """Early audio+text fusion (see :class:`~mer_ensemble.models._blocks.AudioTextFusionNet`).

    Needs features of modality ``audio`` and ``text`` and no other. When any of them is
    frame-level, both sides are sequences (an utterance-level feature counts as one step)
    and fused by cross-attention; otherwise by a joint MLP.
    """

    input_level = "frame"
    predict_batch_size = 256

    def _check_params(self) -> None:
        p, name = self.params, self.name
        check_number(name, "hidden", p["hidden"], low=1, integer=True)
        check_number(name, "dropout", p["dropout"], low=0, high=0.95)
        check_number(name, "num_heads", p["num_heads"], low=1, integer=True)
        _check_heads(name, p["hidden"], p["num_heads"])
        self.groups = group_by_modality(self.feature_dims, self.modalities)
        missing = [m for m in ("audio", "text") if m not in self.groups]
        others = {m: f for m, f in self.groups.items() if m not in ("audio", "text")}
        if missing or others:
            raise ModelError(
                f"model {name!r} needs features of modality 'audio' and 'text' only; "
                f"missing modality {missing}, other modalities {others}; given modalities: {self.modalities}"
            )

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
        }

    def _encode(self, X: Inputs) -> dict[str, np.ndarray]:
        """``audio`` and ``text``: ``(n, D)`` each, or ``(n, T, D)`` plus lengths."""
        sequence = self.config_["sequence"]
        out = _encode_group(X, self.groups["audio"], "audio", sequence)
        out.update(_encode_group(X, self.groups["text"], "text", sequence))
        return out

    def _build_module(self, config: dict[str, Any]) -> nn.Module:
        from mer_ensemble.models._blocks import AudioTextFusionNet

        return AudioTextFusionNet(
            config["audio_dim"],
            config["text_dim"],
            config["hidden"],
            config["dropout"],
            [(t, c) for t, c in config["targets"]],
            sequence=config["sequence"],
            num_heads=config["num_heads"],
        )


AttentionFusionModel.defaults = {
    "hidden": 128,
    "dropout": 0.3,
    "seq_encoder": "lstm",
    **TRAINER_DEFAULTS,
}

AudioTextFusionModel.defaults = {
    "hidden": 128,
    "dropout": 0.3,
    "num_heads": 4,
    **TRAINER_DEFAULTS,
}

register_model("attention_fusion")(AttentionFusionModel)
register_model("audio_text_fusion")(AudioTextFusionModel)
