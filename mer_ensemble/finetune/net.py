"""The fine-tuned network: pretrained encoders, pooling, early fusion and one head per target.

* :class:`EncoderBranch`: one pretrained encoder (a text encoder or decoder, a raw-sample speech
  encoder such as wav2vec2 / HuBERT / WavLM, or a Whisper encoder) with what turns its output
  into a sequence ``(b, T, D)`` with lengths ``(b,)`` and a pooled vector ``(b, D)`` (text: the
  real tokens' mean, the first token or the last real token, as extraction pools; audio: the
  mean over the frames that cover the real samples);
* :class:`FinetuneNet`: one branch, or a text and an audio branch fused early and trained
  together (``concat``: the pooled vectors side by side through a joint layer;
  ``cross_attention``: audio frames attend to text tokens and tokens to frames, as
  :class:`~mer_ensemble.models.nets.audio_text_fusion.AudioTextFusionNet` does on features),
  then a head per target or the targets' interaction block
  (:class:`~mer_ensemble.models.nets.layers.TaskInteraction`).

Batches are the dicts :mod:`mer_ensemble.finetune.inputs` collates (keys ``text:*`` / ``audio:*``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from mer_ensemble.models.nets.layers import CrossAttentionBlock, masked_mean, target_heads

__all__ = ["FUSIONS", "POOLINGS", "EncoderBranch", "FinetuneNet"]

POOLINGS = ("mean", "cls", "last")
FUSIONS = ("concat", "cross_attention")


class EncoderBranch(nn.Module):
    """One pretrained encoder; ``kind`` is ``text``, ``raw`` (raw-sample speech) or ``whisper``."""

    def __init__(self, encoder: nn.Module, kind: str, pooling: str = "mean") -> None:
        super().__init__()
        self.encoder = encoder
        self.kind = kind
        self.pooling = pooling if kind == "text" else "mean"

    def sequence(self, inputs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Hidden states ``(b, T, D)`` of the last layer and the real lengths ``(b,)``."""
        if self.kind == "text":
            mask = inputs["text:attention_mask"]
            hidden = self.encoder(input_ids=inputs["text:input_ids"], attention_mask=mask).last_hidden_state
            return hidden, mask.sum(dim=1)
        if self.kind == "whisper":
            frames = inputs["audio:frames"]
            hidden = self.encoder(inputs["audio:input_features"]).last_hidden_state
            return hidden[:, : int(frames.max())], frames.clamp(max=hidden.shape[1])
        kwargs = {"input_values": inputs["audio:input_values"]}
        if "audio:attention_mask" in inputs:
            kwargs["attention_mask"] = inputs["audio:attention_mask"]
        hidden = self.encoder(**kwargs).last_hidden_state
        frames = self.encoder._get_feat_extract_output_lengths(inputs["audio:samples"])
        return hidden, frames.to(torch.int64).clamp(min=1, max=hidden.shape[1])

    def pool(self, hidden: Tensor, lengths: Tensor) -> Tensor:
        """``(b, D)`` float32 from :meth:`sequence`'s output."""
        if self.pooling == "cls":
            return hidden[:, 0].float()
        if self.pooling == "last":
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), lengths - 1].float()
        return masked_mean(hidden, lengths)


class FinetuneNet(nn.Module):
    """Encoders + fusion + heads (see the module docstring).

    ``dims``: modality -> the encoder's hidden size; ``targets``: ``(name, n_classes)`` in
    task order; ``hidden``: width of the joint layer (joint models only); ``dropout``: before
    the heads (and in the fusion layers).
    """

    def __init__(
        self,
        branches: Mapping[str, EncoderBranch],
        dims: Mapping[str, int],
        targets: Sequence[tuple[str, int]],
        *,
        fusion: str = "concat",
        hidden: int = 256,
        dropout: float = 0.1,
        num_heads: int = 4,
        task_interaction: bool = False,
        interaction_heads: int = 4,
    ) -> None:
        super().__init__()
        self.modalities = list(branches)
        self.branches = nn.ModuleDict(dict(branches))
        self.fusion = fusion if len(self.modalities) > 1 else None
        self.dropout = nn.Dropout(dropout)
        if self.fusion is None:
            width = int(dims[self.modalities[0]])
        elif self.fusion == "concat":
            width = int(hidden)
            self.joint = nn.Sequential(nn.Linear(sum(int(dims[m]) for m in self.modalities), width), nn.GELU(),
                                       nn.Dropout(dropout))
        else:
            width = int(hidden)
            self.project = nn.ModuleDict({m: nn.Linear(int(dims[m]), width) for m in self.modalities})
            self.audio_to_text = CrossAttentionBlock(width, num_heads, dropout)
            self.text_to_audio = CrossAttentionBlock(width, num_heads, dropout)
            self.joint = nn.Sequential(nn.Linear(2 * width, width), nn.GELU(), nn.Dropout(dropout))
        self.heads = target_heads(width, targets, task_interaction=task_interaction,
                                  interaction_heads=interaction_heads, dropout=dropout)

    def encoder_parameters(self, modality: str) -> Iterator[tuple[str, nn.Parameter]]:
        """Named parameters of one pretrained encoder."""
        return self.branches[modality].encoder.named_parameters()

    def head_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """Named parameters outside the pretrained encoders (fusion layers and heads)."""
        return ((name, p) for name, p in self.named_parameters() if not name.startswith("branches."))

    def features(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """The vector the heads read, ``(b, width)`` float32."""
        if self.fusion is None:
            branch = self.branches[self.modalities[0]]
            return branch.pool(*branch.sequence(inputs))
        if self.fusion == "concat":
            pooled = [self.branches[m].pool(*self.branches[m].sequence(inputs)) for m in self.modalities]
            return self.joint(self.dropout(torch.cat(pooled, dim=1)))
        text, text_len = self.branches["text"].sequence(inputs)
        audio, audio_len = self.branches["audio"].sequence(inputs)
        text, audio = self.project["text"](text), self.project["audio"](audio)
        audio_ctx = self.audio_to_text(audio, text, text_len)
        text_ctx = self.text_to_audio(text, audio, audio_len)
        fused = torch.cat([masked_mean(audio_ctx, audio_len), masked_mean(text_ctx, text_len)], dim=1)
        return self.joint(fused)

    def forward(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Logits ``(b, n_classes)`` per target."""
        return self.heads(self.dropout(self.features(inputs)))
