"""torch building blocks and networks of the neural model families.

This module imports torch at the top; the family modules import it only when a model
is built, so that importing :mod:`mer_ensemble.models` stays light.

Every network's ``forward`` takes a dict of input tensors (rows first) and returns
``{target: logits (b, n_classes)}``. A sequence input ``name`` comes with its lengths
under ``lengths_key(name)``: ``x`` ``(b, T, D)`` zero-padded, lengths ``(b,)`` int64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mer_ensemble.models._inputs import lengths_key

__all__ = [
    "AttentionFusionNet",
    "AudioTextFusionNet",
    "CrossAttentionBlock",
    "LSTMEncoder",
    "MLPNet",
    "Standardize",
    "TargetHeads",
    "TransformerSeqEncoder",
    "UttEncoder",
    "masked_mean",
    "padding_mask",
]


# ---------------------------------------------------------------------------------------------
# small blocks


def padding_mask(lengths: Tensor, steps: int) -> Tensor:
    """``(b, steps)`` bool, True on padded positions (the convention of torch attention)."""
    return torch.arange(steps, device=lengths.device)[None, :] >= lengths[:, None]


def masked_mean(x: Tensor, lengths: Tensor) -> Tensor:
    """Mean of ``x`` ``(b, T, H)`` over the first ``lengths[i]`` steps of each row, ``(b, H)``
    float32 (summed in float32 also under mixed precision)."""
    keep = (~padding_mask(lengths, x.shape[1])).unsqueeze(-1)
    total = (x.float() * keep).sum(dim=1)
    return total / lengths.clamp(min=1).unsqueeze(-1).float()


def trim_padding(x: Tensor, lengths: Tensor) -> Tensor:
    """Drop the time steps past the longest row of the batch: ``(b, T, D)`` -> ``(b, T', D)``."""
    return x[:, : int(lengths.max())]


def sinusoidal_positions(steps: int, dim: int, device: torch.device) -> Tensor:
    """Fixed sine/cosine position codes, ``(steps, dim)``."""
    position = torch.arange(steps, device=device, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    codes = torch.zeros(steps, dim, device=device)
    codes[:, 0::2] = torch.sin(position * rate)
    codes[:, 1::2] = torch.cos(position * rate[: dim // 2])
    return codes


class Standardize(nn.Module):
    """``(x - mean) / std`` with statistics from the training rows, kept as buffers."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set_statistics(self, features: Tensor) -> None:
        """Take mean and std from ``features`` ``(n, dim)`` (std below 1e-6 becomes 1)."""
        std = features.std(dim=0, unbiased=False)
        self.mean.copy_(features.mean(dim=0))
        self.std.copy_(torch.where(std < 1e-6, torch.ones_like(std), std))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class TargetHeads(nn.Module):
    """One ``Linear(hidden, n_classes)`` per target; ``forward(h (b, hidden))`` ->
    ``{target: logits}``. Replaceable by an interaction block that lets targets attend
    to each other (emotion <-> intent) as long as it keeps this signature."""

    def __init__(self, hidden: int, targets: Sequence[tuple[str, int]]) -> None:
        super().__init__()
        self.names = [name for name, _ in targets]
        self.linears = nn.ModuleList([nn.Linear(hidden, n_classes) for _, n_classes in targets])

    def forward(self, hidden: Tensor) -> dict[str, Tensor]:
        return {name: linear(hidden) for name, linear in zip(self.names, self.linears, strict=True)}


class UttEncoder(nn.Module):
    """MER2024 baseline encoder: Dropout → Linear(D, H) → ReLU → Linear(H, H) → ReLU →
    Linear(H, H) → ReLU; ``(b, D)`` -> ``(b, H)``."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class LSTMEncoder(nn.Module):
    """Dropout → LSTM(D, H) → mean over the real steps → Linear(H, H) → ReLU;
    ``(b, T, D)`` with lengths ``(b,)`` -> ``(b, H)``. Unidirectional, so the padding after
    a row's end does not change its outputs (no packing, no host synchronisation)."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.LSTM(dim, hidden, batch_first=True)
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU())

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        x = trim_padding(x, lengths)
        outputs, _ = self.rnn(self.dropout(x))
        return self.out(masked_mean(outputs, lengths))


class TransformerSeqEncoder(nn.Module):
    """Dropout → Linear(D, H) + sinusoidal positions → Transformer encoder (padding masked)
    → mean over the real steps; ``(b, T, D)`` with lengths ``(b,)`` -> ``(b, H)``."""

    def __init__(self, dim: int, hidden: int, dropout: float, num_heads: int = 4, num_layers: int = 1) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, hidden))
        layer = nn.TransformerEncoderLayer(
            hidden, num_heads, dim_feedforward=2 * hidden, dropout=dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        x = trim_padding(x, lengths)
        h = self.proj(x)
        h = h + sinusoidal_positions(h.shape[1], h.shape[2], h.device).to(h.dtype)
        h = self.encoder(h, src_key_padding_mask=padding_mask(lengths, h.shape[1]))
        return masked_mean(h, lengths)


class CrossAttentionBlock(nn.Module):
    """``query`` attends to ``context`` (padding masked), then a feed-forward layer; both
    with residuals and LayerNorm. ``(b, Tq, H)``, ``(b, Tc, H)`` -> ``(b, Tq, H)``."""

    def __init__(self, hidden: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(hidden, num_heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(hidden)
        self.ff = nn.Sequential(
            nn.Linear(hidden, 2 * hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(2 * hidden, hidden)
        )
        self.norm2 = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: Tensor, context: Tensor, context_lengths: Tensor) -> Tensor:
        mask = padding_mask(context_lengths, context.shape[1])
        attended, _ = self.attention(query, context, context, key_padding_mask=mask, need_weights=False)
        h = self.norm1(query + self.dropout(attended))
        return self.norm2(h + self.dropout(self.ff(h)))


# ---------------------------------------------------------------------------------------------
# networks


class MLPNet(nn.Module):
    """Standardize → [Linear → ReLU → Dropout] × layers → one head per target.

    Reads ``inputs["x"]`` ``(b, D)``."""

    def __init__(self, dim: int, hidden: int, layers: int, dropout: float, targets: Sequence[tuple[str, int]]) -> None:
        super().__init__()
        self.standardize = Standardize(dim)
        blocks: list[nn.Module] = []
        for i in range(layers):
            blocks += [nn.Linear(dim if i == 0 else hidden, hidden), nn.ReLU(), nn.Dropout(dropout)]
        self.body = nn.Sequential(*blocks)
        self.heads = TargetHeads(hidden, targets)

    def forward(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return self.heads(self.body(self.standardize(inputs["x"])))


class AttentionFusionNet(nn.Module):
    """MER2024 baseline fusion over any number of modalities.

    Per modality an encoder to ``(b, H)`` (:class:`UttEncoder` for an ``(b, D)`` input,
    :class:`LSTMEncoder` or :class:`TransformerSeqEncoder` for a sequence input); the hidden
    vectors concatenated → the same three-layer MLP (M·H → H) → Linear(H, M) = modality
    weights (no softmax); fused = weighted sum of the hidden vectors → one head per target.

    Extension points: :meth:`encode` returns the per-modality hidden vectors (for
    per-modality heads and consistency losses on unlabelled rows), :meth:`fuse` the
    fused vector and weights, and ``heads`` may be swapped for a target-interaction block.
    """

    def __init__(
        self,
        modalities: Sequence[tuple[str, int, str]],
        hidden: int,
        dropout: float,
        targets: Sequence[tuple[str, int]],
        seq_encoder: str = "lstm",
    ) -> None:
        super().__init__()
        self.modality_names = [name for name, _, _ in modalities]
        self.sequence = [level == "frame" for _, _, level in modalities]
        self.encoders = nn.ModuleList(
            [self._encoder(dim, level, hidden, dropout, seq_encoder) for _, dim, level in modalities]
        )
        n = len(modalities)
        self.attention = UttEncoder(n * hidden, hidden, dropout)
        self.modality_weights = nn.Linear(hidden, n)
        self.heads = TargetHeads(hidden, targets)

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
        fused, _ = self.fuse(self.encode(inputs))
        return self.heads(fused)


class AudioTextFusionNet(nn.Module):
    """Audio and text fused early and trained jointly (MER2024 runner-up design).

    Utterance level (``sequence=False``; inputs ``audio`` ``(b, Da)``, ``text`` ``(b, Dt)``):
    per-modality projection Dropout → Linear → ReLU, then a joint MLP over both.
    Frame level (``sequence=True``; inputs ``(b, T, D)`` with lengths): per-frame projections,
    audio frames attend to text tokens and text tokens to audio frames, each side is
    mean-pooled over its real steps, then the same joint MLP. One head per target.
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
    ) -> None:
        super().__init__()
        self.sequence = sequence
        self.audio_proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(audio_dim, hidden), nn.ReLU())
        self.text_proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(text_dim, hidden), nn.ReLU())
        if sequence:
            self.audio_to_text = CrossAttentionBlock(hidden, num_heads, dropout)
            self.text_to_audio = CrossAttentionBlock(hidden, num_heads, dropout)
        self.joint = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.heads = TargetHeads(hidden, targets)

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
        return self.heads(self.fuse(self.encode(inputs)))
