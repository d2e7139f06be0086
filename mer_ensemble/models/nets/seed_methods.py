"""Training-time options of the fusion networks: the seed methods.

Per-modality auxiliary heads and cross-modal distribution matching on unlabelled rows,
modality dropout, feature noise and mixing in noisy feature variants. They reach the
trainer through :class:`~mer_ensemble.nn.protocol.TrainingHooks`, whose fields are set only
while the option that needs them is on, so a network with every option off trains exactly
like one without them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mer_ensemble.models._inputs import VARIANT_MARK
from mer_ensemble.models.nets.layers import TargetHeads
from mer_ensemble.nn.losses import supervised_loss
from mer_ensemble.nn.modules import TrainableNet
from mer_ensemble.nn.protocol import TrainingHooks

__all__ = ["FusionHooks", "TrainingOptions", "aux_key", "cross_modal_mismatch", "rampup"]


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


class FusionHooks(TrainableNet):
    """Trainer hooks (:meth:`training_hooks`) for a network with ``encode(inputs) -> {modality: (b, H)}``.

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

    def training_hooks(self) -> TrainingHooks:
        """The trainer hooks of the options that are on (see :class:`TrainingOptions`)."""
        return TrainingHooks(loss=self.loss, augment=self.augment, unlabeled_loss=self.unlabeled_loss)

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
