"""torch building blocks and networks of the neural model families.

This module imports torch at the top; the family modules import it only when a model
is built, so that importing :mod:`mer_ensemble.models` stays light.

The fusion networks also carry the training-time options of the seed methods
(:class:`TrainingOptions`): per-modality auxiliary heads and cross-modal distribution
matching on unlabelled rows, modality dropout, feature noise and mixing in noisy feature
variants. They reach the trainer through its hooks (``loss``, ``augment``,
``unlabeled_loss``), which exist only while the option that needs them is on, so a
network with every option off trains exactly like one without them.

Every network's ``forward`` takes a dict of input tensors (rows first) and returns
``{target: logits (b, n_classes)}``. A sequence input ``name`` comes with its lengths
under ``lengths_key(name)``: ``x`` ``(b, T, D)`` zero-padded, lengths ``(b,)`` int64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

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
    "TaskInteraction",
    "TrainingOptions",
    "TransformerSeqEncoder",
    "UttEncoder",
    "aux_key",
    "cross_modal_mismatch",
    "masked_mean",
    "padding_mask",
    "rampup",
    "variant_key",
]

#: reserved input keys ``<input>@variant<j>``: a noisy variant of input ``<input>`` for the same rows
VARIANT_MARK = "@variant"


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
            raise ValueError(f"target interaction needs at least two targets, got {[t for t, _ in targets]}")
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


# ---------------------------------------------------------------------------------------------
# training-time options of the fusion networks (seed methods)


def variant_key(key: str, index: int) -> str:
    """The reserved input key of noisy variant ``index`` of input ``key``."""
    return f"{key}{VARIANT_MARK}{index}"


def aux_key(target: str, modality: str) -> str:
    """Output key of the auxiliary head of ``modality`` for ``target`` (training mode only)."""
    return f"{target}@{modality}"


def cross_modal_mismatch(logits: Sequence[Tensor]) -> Tensor:
    """How much the class distributions of several modality heads disagree, a scalar.

    ``logits``: one ``(b, C)`` tensor per modality. Returns the generalised Jensen–Shannon
    divergence ``mean_m KL(p_m || p̄)`` with ``p̄`` the mean distribution, averaged over
    rows: 0 when every head predicts the same distribution, at most ``log M``, symmetric in
    the modalities and differentiable for every head.
    """
    log_p = torch.stack([torch.log_softmax(x.float(), dim=1) for x in logits])  # (M, b, C)
    log_mean = torch.logsumexp(log_p, dim=0) - math.log(len(logits))  # (b, C)
    kl = (log_p.exp() * (log_p - log_mean)).sum(dim=2)  # (M, b)
    return kl.mean(dim=0).mean()


def rampup(progress: float) -> float:
    """Sigmoid-shaped ramp from 0 to 1: ``exp(-5 (1 - progress)^2)`` for progress in [0, 1]."""
    progress = min(max(progress, 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - progress) ** 2)


@dataclass(frozen=True)
class TrainingOptions:
    """Training-time options of a fusion network (all off by default).

    ``aux_weight``: weight of the per-modality auxiliary heads' cross-entropy on labelled
    rows (0: no auxiliary heads). ``cmdm_weight``: weight of the cross-modal distribution
    matching term (:func:`cross_modal_mismatch` of the auxiliary heads on a batch of
    unlabelled rows), ramped up over ``cmdm_rampup`` epochs. ``modality_dropout``: chance
    that a training row's modality input is zeroed (at least one modality kept per row).
    ``feature_noise``: std of Gaussian noise added to training inputs, relative to each
    input dimension's std over the training rows. ``variant_prob``: chance that a training
    row's modality input is replaced by one of its noisy variants (given as reserved
    ``<input>@variant<j>`` inputs).
    """

    aux_weight: float = 0.0
    cmdm_weight: float = 0.0
    cmdm_rampup: int = 0
    modality_dropout: float = 0.0
    feature_noise: float = 0.0
    variant_prob: float = 0.0

    @classmethod
    def from_config(cls, values: Mapping[str, float] | None) -> TrainingOptions:
        return cls(**(values or {}))

    @property
    def augments(self) -> bool:
        return self.modality_dropout > 0 or self.feature_noise > 0 or self.variant_prob > 0


class _TrainingHooks(nn.Module):
    """Trainer hooks for a network with ``encode(inputs) -> {modality: (b, H)}``.

    A subclass sets ``self.modality_names`` (one per modality; each is also the input key
    of that modality) and ``self.options``, calls :meth:`_build_aux_heads` last in
    ``__init__`` (so a network without auxiliary heads is built exactly as before) and
    passes its outputs through :meth:`_with_aux` in ``forward``.
    """

    options: TrainingOptions
    modality_names: list[str]

    def _build_aux_heads(self, hidden: int, targets: Sequence[tuple[str, int]]) -> None:
        self.aux_heads = None
        if self.options.aux_weight > 0:
            self.aux_heads = nn.ModuleList([TargetHeads(hidden, targets) for _ in self.modality_names])
        self.steps_per_epoch = 1
        self.unlabeled_steps = 0
        self.noise_scales: dict[str, str] = {}

    def set_training_rows(self, n_rows: int, batch_size: int) -> None:
        """Steps per epoch of the coming fit (for the ramp-up of the matching term)."""
        self.steps_per_epoch = max(1, math.ceil(n_rows / batch_size))
        self.unlabeled_steps = 0

    def set_noise_scale(self, scales: Mapping[str, Tensor]) -> None:
        """Per input key the ``(D,)`` std of the training rows (non-persistent buffers)."""
        for i, (key, scale) in enumerate(scales.items()):
            buffer = f"noise_scale_{i}"
            self.register_buffer(buffer, torch.as_tensor(scale, dtype=torch.float32), persistent=False)
            self.noise_scales[key] = buffer

    # -- the hooks: present only while the option that needs them is on ----------------------

    @property
    def loss(self) -> Callable[..., Tensor] | None:
        return self._loss_with_aux if self.aux_heads is not None else None

    @property
    def augment(self) -> Callable[[dict[str, Tensor]], dict[str, Tensor]] | None:
        return self._augment if self.options.augments else None

    @property
    def unlabeled_loss(self) -> Callable[[dict[str, Tensor]], Tensor] | None:
        return self._matching_loss if self.options.cmdm_weight > 0 and self.aux_heads is not None else None

    # -- implementations -------------------------------------------------------------------

    def _aux_logits(self, hidden: Mapping[str, Tensor]) -> dict[str, dict[str, Tensor]]:
        """``{modality: {target: logits (b, C)}}`` of the auxiliary heads."""
        return {m: heads(hidden[m]) for m, heads in zip(self.modality_names, self.aux_heads, strict=True)}

    def _with_aux(self, outputs: dict[str, Tensor], hidden: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Add the auxiliary heads' logits under :func:`aux_key` while training."""
        if self.training and self.aux_heads is not None:
            for modality, logits in self._aux_logits(hidden).items():
                outputs.update({aux_key(t, modality): v for t, v in logits.items()})
        return outputs

    def _loss_with_aux(
        self, outputs: Mapping[str, Tensor], labels: Mapping[str, Tensor], class_weights: Mapping[str, Tensor]
    ) -> Tensor:
        """Supervised loss of the fused heads + ``aux_weight`` × mean over modalities of the
        auxiliary heads' supervised loss."""
        from mer_ensemble.training.trainer import supervised_loss

        loss = supervised_loss({t: outputs[t] for t in labels}, labels, class_weights)
        aux = [
            supervised_loss({t: outputs[aux_key(t, m)] for t in labels}, labels, class_weights)
            for m in self.modality_names
        ]
        return loss + self.options.aux_weight * (sum(aux[1:], aux[0]) / len(aux))

    def matching_weight(self) -> float:
        """The ramped weight of the matching term at the current step."""
        total = self.options.cmdm_rampup * self.steps_per_epoch
        ramp = rampup(self.unlabeled_steps / total) if total > 0 else 1.0
        return self.options.cmdm_weight * ramp

    def _matching_loss(self, inputs: dict[str, Tensor]) -> Tensor:
        """Cross-modal distribution matching on a batch of unlabelled rows: the auxiliary
        heads' class distributions should agree across modalities, for every target."""
        weight = self.matching_weight()
        self.unlabeled_steps += 1
        logits = self._aux_logits(self.encode(inputs))
        targets = list(logits[self.modality_names[0]])
        terms = [cross_modal_mismatch([logits[m][t] for m in self.modality_names]) for t in targets]
        return weight * (sum(terms[1:], terms[0]) / len(terms))

    def _augment(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Noisy variants, then feature noise, then modality dropout, on a training batch;
        the reserved variant keys are removed."""
        out = {k: v for k, v in inputs.items() if VARIANT_MARK not in k}
        options = self.options
        first = next(iter(out.values()))
        rows, device = first.shape[0], first.device
        if options.variant_prob > 0:
            for key in self.modality_names:
                variants = [v for k, v in inputs.items() if k.startswith(key + VARIANT_MARK)]
                if variants:
                    out[key] = _mix_variants(out[key], variants, options.variant_prob)
        if options.feature_noise > 0:
            for key, buffer in self.noise_scales.items():
                scale = getattr(self, buffer) * options.feature_noise
                out[key] = out[key] + torch.randn_like(out[key]) * scale.to(out[key].dtype)
        if options.modality_dropout > 0 and len(self.modality_names) > 1:
            n = len(self.modality_names)
            keep = torch.rand(rows, n, device=device) >= options.modality_dropout
            rescue = torch.randint(n, (rows,), device=device)
            keep = keep | (~keep.any(dim=1, keepdim=True) & (torch.arange(n, device=device) == rescue[:, None]))
            for j, key in enumerate(self.modality_names):
                x = out[key]
                out[key] = x * keep[:, j].view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
        return out


def _mix_variants(clean: Tensor, variants: Sequence[Tensor], prob: float) -> Tensor:
    """Each row replaced with chance ``prob`` by the same row of one variant drawn uniformly."""
    rows = clean.shape[0]
    use = torch.rand(rows, device=clean.device) < prob
    pick = torch.randint(len(variants), (rows,), device=clean.device)
    out = clean
    for j, variant in enumerate(variants):
        chosen = (use & (pick == j)).view(-1, *([1] * (clean.dim() - 1)))
        out = torch.where(chosen, variant.to(clean.dtype), out)
    return out


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


class AttentionFusionNet(_TrainingHooks):
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
        if task_interaction:
            self.heads = TaskInteraction(hidden, targets, interaction_heads, dropout)
        else:
            self.heads = TargetHeads(hidden, targets)
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


class AudioTextFusionNet(_TrainingHooks):
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
        if task_interaction:
            self.heads = TaskInteraction(hidden, targets, interaction_heads, dropout)
        else:
            self.heads = TargetHeads(hidden, targets)
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
