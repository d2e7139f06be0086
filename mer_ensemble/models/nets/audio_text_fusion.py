"""The network of the ``audio_text_fusion`` family (early audio-text fusion, jointly trained)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mer_ensemble.models._inputs import lengths_key
from mer_ensemble.models.nets.layers import CrossAttentionBlock, masked_mean, target_heads, trim_padding
from mer_ensemble.models.nets.seed_methods import FusionHooks, TrainingOptions

__all__ = ["AudioTextFusionNet"]


class AudioTextFusionNet(FusionHooks):
    """Audio and text fused early and trained jointly (MER2024 runner-up design).

    Utterance level (``sequence=False``; inputs ``audio`` ``(b, Da)``, ``text`` ``(b, Dt)``):
    per-modality projection Dropout → Linear → ReLU, then a joint MLP over both.
    Frame level (``sequence=True``; inputs ``(b, T, D)`` with lengths): per-frame projections,
    audio frames attend to text tokens and text tokens to audio frames, each side is
    mean-pooled over its real steps, then the same joint MLP. One head per target
    (:class:`TaskInteraction` instead when ``task_interaction``). ``options``: see
    :class:`TrainingOptions`; the auxiliary heads read the per-modality vectors of :meth:`encode`.
    """

    def __init__(
        self,
        audio_dim: int,
        text_dim: int,
        hidden: int,
        dropout: float,
        targets: Sequence[tuple[str, int]],
        sequence: bool,
        num_heads: int = 4,
        *,
        task_interaction: bool = False,
        interaction_heads: int = 4,
        options: TrainingOptions | None = None,
    ) -> None:
        super().__init__()
        self.options = options or TrainingOptions()
        self.modality_names = ["audio", "text"]
        self.sequence = sequence
        self.audio_proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(audio_dim, hidden), nn.ReLU())
        self.text_proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(text_dim, hidden), nn.ReLU())
        if sequence:
            self.audio_to_text = CrossAttentionBlock(hidden, num_heads, dropout)
            self.text_to_audio = CrossAttentionBlock(hidden, num_heads, dropout)
        self.joint = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.heads = target_heads(hidden, targets, task_interaction=task_interaction,
                                  interaction_heads=interaction_heads, dropout=dropout)
        self._build_aux_heads(hidden, targets)

    def encode(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Hidden vector per modality (``audio``, ``text``), each ``(b, H)``."""
        if not self.sequence:
            return {"audio": self.audio_proj(inputs["audio"]), "text": self.text_proj(inputs["text"])}
        audio_len, text_len = inputs[lengths_key("audio")], inputs[lengths_key("text")]
        audio = self.audio_proj(trim_padding(inputs["audio"], audio_len))
        text = self.text_proj(trim_padding(inputs["text"], text_len))
        audio_ctx = self.audio_to_text(audio, text, text_len)
        text_ctx = self.text_to_audio(text, audio, audio_len)
        return {"audio": masked_mean(audio_ctx, audio_len), "text": masked_mean(text_ctx, text_len)}

    def fuse(self, hidden: Mapping[str, Tensor]) -> Tensor:
        """Joint vector ``(b, H)`` from :meth:`encode`'s output."""
        return self.joint(torch.cat([hidden["audio"], hidden["text"]], dim=1))

    def forward(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        hidden = self.encode(inputs)
        return self._with_aux(self.heads(self.fuse(hidden)), hidden)
