"""A training loop over prepared batches, for networks whose inputs do not fit one tensor per key.

:class:`~mer_ensemble.nn.trainer.Trainer` keeps every row on the device and slices tensors;
fine-tuning a pretrained encoder on raw text or audio instead needs per-batch work (padding
to the batch's longest row, log-mel spectrograms, audio read from disk). :class:`BatchLoop`
takes the batches from a callable and supplies the rest: mixed precision on CUDA (bfloat16,
or float16 with a gradient scaler), gradient clipping, a per-step learning-rate schedule,
early stopping on a score computed after every epoch, and the best epoch's weights restored
at the end. Only parameters that train (and buffers) are snapshotted, so with adapters (LoRA)
on a large frozen encoder the snapshot stays small.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mer_ensemble.errors import ModelError
from mer_ensemble.nn.trainer import EpochLog, FitResult, _autocast, _grad_scaler, run_epochs

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

__all__ = ["BatchLoop", "Batch", "trainable_state"]

#: one training batch: inputs (key -> tensor on the device) and labels (target -> (b,) int64, -1 unknown)
Batch = tuple[dict[str, "Tensor"], dict[str, "Tensor"]]


def trainable_state(module: nn.Module) -> dict[str, Tensor]:
    """Copies of the parameters that train and of the saved buffers (what changes during a fit),
    keyed as in ``module.state_dict()``."""
    params = dict(module.named_parameters())
    return {name: value.detach().clone() for name, value in module.state_dict().items()
            if name not in params or params[name].requires_grad}


@dataclass
class BatchLoop:
    """Epochs of optimiser steps over batches from a callable, with early stopping.

    ``epochs``: the most epochs; ``patience``: epochs without a better score before stopping
    (None: run every epoch); ``grad_clip``: max gradient norm (None: no clipping);
    ``dtype``: the autocast dtype (None: float32, as on the CPU); ``callback`` gets each
    :class:`~mer_ensemble.nn.trainer.EpochLog`.
    """

    epochs: int
    patience: int | None = 1
    grad_clip: float | None = 1.0
    dtype: torch.dtype | None = None
    callback: Callable[[EpochLog], None] | None = None

    def __post_init__(self) -> None:
        if int(self.epochs) < 1:
            raise ModelError(f"epochs must be >= 1, got {self.epochs!r}")
        if self.patience is not None and int(self.patience) < 1:
            raise ModelError(f"patience must be >= 1 or None, got {self.patience!r}")

    def fit(
        self,
        module: nn.Module,
        optimizer: Any,
        batches: Callable[[int], Iterable[Batch]],
        loss_fn: Callable[[Mapping[str, Tensor], Mapping[str, Tensor]], Tensor],
        *,
        scheduler: Any = None,
        evaluate: Callable[[], float] | None = None,
    ) -> FitResult:
        """Train ``module`` (already on its device) in place.

        ``batches(epoch)`` yields the epoch's :data:`Batch` es (1-based epoch; the caller
        shuffles); ``loss_fn(outputs, labels)`` gives the scalar loss; ``scheduler.step()``
        runs after every optimiser step; ``evaluate()`` (module in eval mode) scores the
        current weights after every epoch, higher is better. With ``evaluate`` the best
        epoch's weights are restored at the end (first best on ties); without it the last.
        """
        import torch

        device = next(module.parameters()).device
        scaler = _grad_scaler() if self.dtype == torch.float16 else None

        def train_epoch(epoch: int) -> float:
            module.train()
            total, rows = torch.zeros((), device=device), 0
            for inputs, labels in batches(epoch):
                loss = self._step(module, optimizer, scheduler, scaler, device, inputs, labels, loss_fn)
                n = len(next(iter(labels.values())))
                total += loss.detach().float() * n
                rows += n
            return float(total) / max(rows, 1)

        def score() -> float:
            module.eval()
            return float(evaluate())

        result = run_epochs(int(self.epochs), None if self.patience is None else int(self.patience), train_epoch,
                            None if evaluate is None else score, snapshot=lambda: trainable_state(module),
                            restore=lambda state: module.load_state_dict(state, strict=False), callback=self.callback)
        module.eval()
        return result

    def _step(self, module: nn.Module, optimizer: Any, scheduler: Any, scaler: Any, device: torch.device,
              inputs: dict[str, Tensor], labels: dict[str, Tensor],
              loss_fn: Callable[[Mapping[str, Tensor], Mapping[str, Tensor]], Tensor]) -> Tensor:
        import torch

        with _autocast(device, self.dtype):
            loss = loss_fn(module(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if scaler is None:
            loss.backward()
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            if self.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
            scaler.step(optimizer)
            scaler.update()
        if scheduler is not None:
            scheduler.step()
        return loss
