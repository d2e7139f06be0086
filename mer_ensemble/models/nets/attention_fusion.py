"""The network of the ``attention_fusion`` family (the MER2024 baseline fusion)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mer_ensemble.models._inputs import lengths_key
from mer_ensemble.models.nets.layers import LSTMEncoder, TransformerSeqEncoder, UttEncoder, target_heads
from mer_ensemble.models.nets.seed_methods import FusionHooks, TrainingOptions

__all__ = ["AttentionFusionNet"]


class AttentionFusionNet(FusionHooks):
    """MER2024 baseline fusion over any number of modalities.

    Per modality an encoder to ``(b, H)`` (:class:`UttEncoder` for an ``(b, D)`` input,
    :class:`LSTMEncoder` or :class:`TransformerSeqEncoder` for a sequence input); the hidden
    vectors concatenated → the same three-layer MLP (M·H → H) → Linear(H, M) = modality
    weights (no softmax); fused = weighted sum of the hidden vectors → one head per target
    (:class:`TaskInteraction` instead when ``task_interaction``).

    Extension points: :meth:`encode` returns the per-modality hidden vectors (for
    per-modality heads and consistency losses on unlabelled rows), :meth:`fuse` the
    fused vector and weights. ``options``: see :class:`TrainingOptions`.
    """

    def __init__(
        self,
        modalities: Sequence[tuple[str, int, str]],
        hidden: int,
        dropout: float,
        targets: Sequence[tuple[str, int]],
        seq_encoder: str = "lstm",
        *,
        task_interaction: bool = False,
        interaction_heads: int = 4,
        options: TrainingOptions | None = None,
    ) -> None:
        super().__init__()
        self.options = options or TrainingOptions()
        self.modality_names = [name for name, _, _ in modalities]
        self.sequence = [level == "frame" for _, _, level in modalities]
        self.encoders = nn.ModuleList(
            [self._encoder(dim, level, hidden, dropout, seq_encoder) for _, dim, level in modalities]
        )
        n = len(modalities)
        self.attention = UttEncoder(n * hidden, hidden, dropout)
        self.modality_weights = nn.Linear(hidden, n)
        self.heads = target_heads(hidden, targets, task_interaction=task_interaction,
                                  interaction_heads=interaction_heads, dropout=dropout)
        self._build_aux_heads(hidden, targets)

    @staticmethod
    def _encoder(dim: int, level: str, hidden: int, dropout: float, kind: str) -> nn.Module:
        if level != "frame":
            return UttEncoder(dim, hidden, dropout)
        if kind == "transformer":
            return TransformerSeqEncoder(dim, hidden, dropout)
        return LSTMEncoder(dim, hidden, dropout)

    def encode(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Hidden vector per modality, each ``(b, H)``."""
        hidden = {}
        for name, is_sequence, encoder in zip(self.modality_names, self.sequence, self.encoders, strict=True):
            if is_sequence:
                hidden[name] = encoder(inputs[name], inputs[lengths_key(name)])
            else:
                hidden[name] = encoder(inputs[name])
        return hidden

    def fuse(self, hidden: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Fused vector ``(b, H)`` and modality weights ``(b, M)`` from :meth:`encode`'s output."""
        ordered = [hidden[name] for name in self.modality_names]
        weights = self.modality_weights(self.attention(torch.cat(ordered, dim=1)))  # (b, M)
        stacked = torch.stack(ordered, dim=2)  # (b, H, M)
        return torch.matmul(stacked, weights.unsqueeze(2)).squeeze(2), weights

    def forward(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        hidden = self.encode(inputs)
        fused, _ = self.fuse(hidden)
        return self._with_aux(self.heads(fused), hidden)
