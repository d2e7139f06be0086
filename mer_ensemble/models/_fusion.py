"""What the two fusion families share: the seed methods' parameters and their wiring,
per-feature input standardisation, and encoding a modality's features as one input.

Both families read frame-level features as Frames (``input_level = "frame"``) and
utterance-level ones as ``(n, D)`` arrays.

The seed methods (:data:`SEED_METHOD_DEFAULTS`, all off by default; usage and
measurements in ``docs/seed_methods.md``):

* ``task_interaction`` / ``interaction_heads``: targets attend to each other through
  separate gated cross-attention heads (emotion <-> intent, emotion <-> sentiment);
* ``cmdm_weight`` / ``cmdm_rampup`` / ``aux_weight``: per-modality auxiliary heads and
  cross-modal distribution matching on unlabelled pool rows (semi-supervised);
* ``modality_dropout`` / ``feature_noise`` / ``variant_prob``: training-time feature
  augmentation for noise robustness (noisy variants come from ``data.noise_variants``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mer_ensemble.data.dataset import Frames
from mer_ensemble.errors import ModelError
from mer_ensemble.models._base import Inputs
from mer_ensemble.models._common import check_choice, check_number
from mer_ensemble.models._inputs import coerce_levels, concat_frames, concat_pooled, lengths_key
from mer_ensemble.models._torch import TorchModel

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "FUSION_CANDIDATES",
    "FUSION_SEARCH_SPACE",
    "SEED_METHOD_DEFAULTS",
    "SEQ_ENCODERS",
    "FusionModel",
    "check_heads",
    "encode_group",
]

SEQ_ENCODERS = ("lstm", "transformer")

#: parameters of the seed methods shared by the fusion families; every option is off by default
SEED_METHOD_DEFAULTS: dict[str, Any] = {
    "task_interaction": False,
    "interaction_heads": 4,
    "cmdm_weight": 0.0,
    "cmdm_rampup": 10,
    "aux_weight": None,
    "modality_dropout": 0.0,
    "feature_noise": 0.0,
    "variant_prob": 0.0,
}


def encode_group(X: Inputs, features: list[str], name: str, sequence: bool) -> dict[str, np.ndarray]:
    """One modality's input: ``{name: (n, D)}``, or ``{name: (n, T, D), name:lengths: (n,)}``."""
    if not sequence:
        return {name: concat_pooled(X, features)}
    frames = concat_frames(X, features)
    return {name: frames.x, lengths_key(name): frames.lengths}


def _feature_statistics(X: Inputs, features: list[str]) -> dict[str, list[list[float]]]:
    """Per feature ``[mean (D,), std (D,)]`` over the training rows (real frames for Frames)."""
    stats = {}
    for f in features:
        value = X[f]
        arr = value.x[value.mask] if isinstance(value, Frames) else np.asarray(value, dtype=np.float32)
        mean = arr.mean(axis=0, dtype=np.float64)
        std = arr.std(axis=0, dtype=np.float64)
        std[std < 1e-6] = 1.0
        stats[f] = [mean.astype(np.float32).tolist(), std.astype(np.float32).tolist()]
    return stats


def _standardized(X: Inputs, stats: dict[str, list[list[float]]]) -> dict[str, Any]:
    """``X`` with every feature scaled by the training statistics; Frames keep zero padding."""
    out = dict(X)
    for f, (mean, std) in stats.items():
        m, s = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
        value = X[f]
        if isinstance(value, Frames):
            scaled = (value.x - m) / s * value.mask[..., None]
            out[f] = Frames(scaled.astype(np.float32), value.lengths)
        else:
            out[f] = ((np.asarray(value, dtype=np.float32) - m) / s).astype(np.float32)
    return out


def check_heads(model: str, hidden: int, num_heads: int) -> None:
    if hidden % num_heads:
        raise ModelError(f"model {model!r}: hidden={hidden} must be divisible by num_heads={num_heads}")


class FusionModel(TorchModel):
    """What both fusion families share: the seed methods' parameters and their wiring.

    ``aux_weight`` None means 1.0 when ``cmdm_weight > 0`` (the matching term needs trained
    per-modality heads) and no auxiliary heads otherwise.
    """

    groups: dict[str, list[str]]
    input_level = "frame"
    predict_batch_size = 256

    @property
    def uses_unlabeled(self) -> bool:  # type: ignore[override]
        """True when cross-modal distribution matching is on (the runner then passes the pool)."""
        return self.params["cmdm_weight"] > 0

    @property
    def uses_variants(self) -> bool:  # type: ignore[override]
        """True when noisy feature variants are mixed into training."""
        return self.params["variant_prob"] > 0

    def _aux_weight(self) -> float:
        weight = self.params["aux_weight"]
        if weight is None:
            return 1.0 if self.params["cmdm_weight"] > 0 else 0.0
        return float(weight)

    def _check_seed_params(self) -> None:
        p, name = self.params, self.name
        check_choice(name, "task_interaction", p["task_interaction"], (False, True))
        check_number(name, "interaction_heads", p["interaction_heads"], low=1, integer=True)
        check_number(name, "cmdm_weight", p["cmdm_weight"], low=0)
        check_number(name, "cmdm_rampup", p["cmdm_rampup"], low=0, integer=True)
        check_number(name, "aux_weight", p["aux_weight"], low=0, allow_none=True)
        check_number(name, "modality_dropout", p["modality_dropout"], low=0, high=0.95)
        check_number(name, "feature_noise", p["feature_noise"], low=0)
        check_number(name, "variant_prob", p["variant_prob"], low=0, high=1)
        if p["task_interaction"]:
            if len(self.targets) < 2:
                raise ModelError(
                    f"model {name!r}: task_interaction needs at least two targets, got {list(self.targets)}"
                )
            check_heads(name, p["hidden"], p["interaction_heads"])
        if p["cmdm_weight"] > 0:
            if self._aux_weight() == 0:
                raise ModelError(f"model {name!r}: cmdm_weight > 0 needs per-modality heads, so aux_weight > 0")
            if len(self.groups) < 2:
                raise ModelError(
                    f"model {name!r}: cmdm_weight > 0 matches predictions across modalities and needs at "
                    f"least two; the features are all of modality {list(self.groups)}"
                )

    def _scaling_config(self, X: Inputs) -> dict[str, Any]:
        """Training-row mean and std per feature when ``standardize`` is on (saved with the model)."""
        if not self.params["standardize"]:
            return {"scaling": None}
        return {"scaling": _feature_statistics(coerce_levels(X, self.levels_), list(self.feature_dims))}

    def _scaled(self, X: Inputs) -> Inputs:
        stats = self.config_.get("scaling")
        return _standardized(X, stats) if stats else X

    def _seed_config(self) -> dict[str, Any]:
        p = self.params
        return {
            "task_interaction": bool(p["task_interaction"]),
            "interaction_heads": int(p["interaction_heads"]),
            "options": {
                "aux_weight": self._aux_weight(),
                "cmdm_weight": float(p["cmdm_weight"]),
                "cmdm_rampup": int(p["cmdm_rampup"]),
                "modality_dropout": float(p["modality_dropout"]),
                "feature_noise": float(p["feature_noise"]),
                "variant_prob": float(p["variant_prob"]),
            },
        }

    @staticmethod
    def _seed_kwargs(config: dict[str, Any]) -> dict[str, Any]:
        """Network keyword arguments of the seed methods (absent in configs saved before them)."""
        from mer_ensemble.models.nets.seed_methods import TrainingOptions

        return {
            "task_interaction": config.get("task_interaction", False),
            "interaction_heads": config.get("interaction_heads", 4),
            "options": TrainingOptions.from_config(config.get("options")),
        }

    def _input_key(self, feature: str) -> str | None:
        return self.modalities[feature]

    def _prepare_module(self, module: nn.Module, inputs: dict[str, np.ndarray]) -> None:
        """Steps per epoch (ramp-up of the matching term) and, with feature noise, the per-dimension
        std of every modality input over the training rows (real frames only)."""
        n = len(next(iter(inputs.values())))
        module.set_training_rows(n, int(self.params["batch_size"]))
        if self.params["feature_noise"] > 0:
            scales = {}
            for key in module.modality_names:
                values = inputs[key]
                if lengths_key(key) in inputs:
                    lengths = inputs[lengths_key(key)]
                    values = values[np.arange(values.shape[1])[None, :] < lengths[:, None]]
                scales[key] = values.reshape(-1, values.shape[-1]).std(axis=0)
            module.set_noise_scale(scales)


#: configurations both fusion families try on the inner held-out rows (regularisation only, so
#: that the width stays compatible with the attention heads)
FUSION_CANDIDATES: list[dict[str, Any]] = [{}, {"dropout": 0.5, "weight_decay": 1e-3}]

#: the default ``tune`` search space of both fusion families
FUSION_SEARCH_SPACE: dict[str, dict[str, Any]] = {
    "hidden": {"type": "categorical", "choices": [64, 128, 256]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.6},
    "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
}
