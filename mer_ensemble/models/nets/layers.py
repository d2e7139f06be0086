"""Small torch blocks the networks share: masking helpers, input standardisation, per-target
heads, modality encoders (MLP, LSTM, Transformer), cross-attention and target interaction.

A sequence input comes with its lengths: ``x`` ``(b, T, D)`` zero-padded, lengths ``(b,)`` int64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mer_ensemble.errors import ModelError

__all__ = [
    "CrossAttentionBlock",
    "LSTMEncoder",
    "Standardize",
    "TargetHeads",
    "TaskInteraction",
    "TransformerSeqEncoder",
    "UttEncoder",
    "masked_mean",
    "padding_mask",
    "sinusoidal_positions",
    "target_heads",
    "trim_padding",
]


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


class TaskInteraction(nn.Module):
    """Targets that attend to each other (the MEIJU@2025 emotion <-> intent interaction).

    Per target ``t`` its own representation ``r_t = ReLU(Linear_t(h))`` ``(b, H)``; ``r_t``
    queries the other targets' representations through its own multi-head attention
    (separate heads per target), a sigmoid gate ``g_t = σ(W_t [r_t; a_t])`` scales what it
    read, and ``LayerNorm(r_t + g_t ⊙ a_t)`` → ``Linear(H, n_classes)`` gives the logits.
    Same signature as :class:`TargetHeads`: ``forward(h (b, H))`` -> ``{target: logits}``.
    With two targets each attends to a single key, so its attention weight is 1 and the block
    is a gated, learned message from the other target's representation.
    """

    def __init__(self, hidden: int, targets: Sequence[tuple[str, int]], num_heads: int, dropout: float) -> None:
        super().__init__()
        if len(targets) < 2:
            raise ModelError(f"target interaction needs at least two targets, got {[t for t, _ in targets]}")
        self.names = [name for name, _ in targets]
        self.project = nn.ModuleList([nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU()) for _ in targets])
        self.attend = nn.ModuleList(
            [nn.MultiheadAttention(hidden, num_heads, dropout=dropout, batch_first=True) for _ in targets]
        )
        self.gates = nn.ModuleList([nn.Linear(2 * hidden, hidden) for _ in targets])
        self.norms = nn.ModuleList([nn.LayerNorm(hidden) for _ in targets])
        self.linears = nn.ModuleList([nn.Linear(hidden, n_classes) for _, n_classes in targets])

    def forward(self, hidden: Tensor) -> dict[str, Tensor]:
        reps = [project(hidden) for project in self.project]
        tokens = torch.stack(reps, dim=1)  # (b, K, H)
        out = {}
        for k, name in enumerate(self.names):
            others = torch.cat([tokens[:, :k], tokens[:, k + 1 :]], dim=1)  # (b, K-1, H)
            read, _ = self.attend[k](tokens[:, k : k + 1], others, others, need_weights=False)
            read = read.squeeze(1)
            gate = torch.sigmoid(self.gates[k](torch.cat([reps[k], read], dim=1)))
            out[name] = self.linears[k](self.norms[k](reps[k] + gate * read))
        return out


def target_heads(hidden: int, targets: Sequence[tuple[str, int]], *, task_interaction: bool = False,
                 interaction_heads: int = 4, dropout: float = 0.0) -> nn.Module:
    """The output heads of a network with ``hidden`` features: one linear head per target
    (:class:`TargetHeads`), or targets that attend to each other (:class:`TaskInteraction`)."""
    if task_interaction:
        return TaskInteraction(hidden, targets, interaction_heads, dropout)
    return TargetHeads(hidden, targets)
