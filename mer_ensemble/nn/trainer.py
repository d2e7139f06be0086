"""A small, model-agnostic trainer for torch modules that read a dict of tensors.

The module supplies the model; the trainer supplies the loop (``fit`` →
``train_epoch`` → ``evaluate``). A module's ``forward(inputs: dict[str, Tensor])``
returns logits ``(b, n_classes)`` per target; every input tensor has the rows on its
first dimension. A module that changes its training (its own loss, batch augmentation,
a term on unlabelled rows) implements :class:`~mer_ensemble.nn.protocol.TrainableModule`.

All rows live on the device as whole tensors; a mini-batch is one index operation per
tensor (no per-sample Python work, no ``Dataset``/``DataLoader``). On CUDA the forward
runs under ``torch.autocast`` (bfloat16, or float16 with a gradient scaler); on the CPU
in float32. Shuffling uses a seeded ``torch.Generator`` and dropout a forked, seeded
global generator, so a CPU fit is reproducible bit for bit.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mer_ensemble.errors import DataError, ModelError
from mer_ensemble.metrics import weighted_f1
from mer_ensemble.nn.device import amp_dtype, resolve_device
from mer_ensemble.nn.losses import masked_cross_entropy, supervised_loss
from mer_ensemble.nn.protocol import TrainingHooks, hooks_of
from mer_ensemble.nn.seeding import seeded

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

__all__ = [
    "EpochLog",
    "FitResult",
    "Trainer",
    "default_score",
    "masked_cross_entropy",
    "predict_logits",
    "predict_proba",
    "run_epochs",
    "seeded",
    "supervised_loss",
    "to_tensors",
]

OPTIMIZERS = ("adam", "adamw")
ScoreFn = Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], float]


# ---------------------------------------------------------------------------------------------
# scores


def default_score(y: Mapping[str, np.ndarray], proba: Mapping[str, np.ndarray]) -> float:
    """Mean over targets of the weighted F1 of ``argmax(proba[t])`` against ``y[t]``.

    ``y[t]`` is ``(n,)`` int (``-1`` ignored), ``proba[t]`` is ``(n, n_classes)``;
    targets without a single known label are left out of the mean.
    """
    scores = [
        weighted_f1(np.asarray(y[t]), np.asarray(p).argmax(axis=1)) for t, p in proba.items() if (y[t] >= 0).any()
    ]
    return float(np.mean(scores)) if scores else 0.0


# ---------------------------------------------------------------------------------------------
# tensors, prediction


def to_tensors(arrays: Mapping[str, Any], device: torch.device | str) -> dict[str, Tensor]:
    """Move a dict of arrays to ``device``: floats become float32, integers int64.

    Every value must have the same number of rows (first dimension); raises
    :class:`DataError` naming the key otherwise.
    """
    import torch

    out: dict[str, Tensor] = {}
    for key, value in arrays.items():
        if not isinstance(value, torch.Tensor):
            value = np.asarray(value)
            if value.dtype.kind == "f" and value.dtype != np.float32:
                value = value.astype(np.float32)
            elif value.dtype.kind in "iu" and value.dtype != np.int64:
                value = value.astype(np.int64)
            if not value.flags.writeable or not value.flags.c_contiguous:
                value = np.array(value, order="C")
            value = torch.from_numpy(value)
        out[key] = value.to(device)
    _n_rows(out)
    return out


def _n_rows(tensors: Mapping[str, Any]) -> int:
    sizes = {key: int(value.shape[0]) for key, value in tensors.items()}
    if not sizes:
        raise DataError("no input tensors given")
    if len(set(sizes.values())) > 1:
        raise DataError(f"inputs disagree on the number of rows: {sizes}")
    return next(iter(sizes.values()))


def _take(tensors: Mapping[str, Tensor], index: Tensor) -> dict[str, Tensor]:
    return {key: value[index] for key, value in tensors.items()}


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _grad_scaler() -> Any:
    """A CUDA gradient scaler for float16 training (``torch.amp`` API, or the older ``torch.cuda.amp``)."""
    import torch

    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()  # pragma: no cover - torch < 2.3


def predict_logits(
    module: nn.Module, inputs: Mapping[str, Tensor], *, batch_size: int = 1024, dtype: torch.dtype | None = None
) -> dict[str, Tensor]:
    """Logits per target, ``(n, n_classes)`` float32 on the module's device, in eval mode,
    computed over contiguous slices of ``batch_size`` rows (inputs already on the device)."""
    import torch

    n = _n_rows(inputs)
    device = next(iter(inputs.values())).device
    module.eval()
    chunks: dict[str, list[Tensor]] = {}
    with torch.no_grad(), _autocast(device, dtype):
        for start in range(0, n, batch_size):
            batch = {key: value[start : start + batch_size] for key, value in inputs.items()}
            for target, logits in module(batch).items():
                chunks.setdefault(target, []).append(logits.float())
    return {target: torch.cat(parts) for target, parts in chunks.items()}


def predict_proba(
    module: nn.Module,
    inputs: Mapping[str, Any],
    *,
    batch_size: int = 1024,
    amp: bool = True,
) -> dict[str, np.ndarray]:
    """Class probabilities per target, ``(n, n_classes)`` float64 rows summing to 1.

    ``inputs`` may be numpy arrays or tensors; they are moved to the module's device.
    """
    import torch

    device = next(module.parameters()).device
    tensors = to_tensors(inputs, device)
    logits = predict_logits(module, tensors, batch_size=batch_size, dtype=amp_dtype(device) if amp else None)
    return {t: torch.softmax(v.double(), dim=1).cpu().numpy() for t, v in logits.items()}


# ---------------------------------------------------------------------------------------------
# the trainer


@dataclass
class EpochLog:
    """One epoch: mean training loss over the rows, validation score (None without validation)."""

    epoch: int
    train_loss: float
    val_score: float | None
    seconds: float


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` did: the epoch whose weights the module holds now (1-based)."""

    best_epoch: int
    best_score: float | None
    epochs_run: int
    stopped_early: bool
    history: list[EpochLog] = field(default_factory=list)


def run_epochs(
    epochs: int,
    patience: int | None,
    train_epoch: Callable[[int], float],
    evaluate: Callable[[], float] | None,
    snapshot: Callable[[], Any],
    restore: Callable[[Any], None],
    callback: Callable[[EpochLog], None] | None = None,
) -> FitResult:
    """The epoch loop with early stopping that both training loops share: ``train_epoch(epoch)``
    (1-based) trains one epoch and gives its mean loss; ``evaluate()`` scores the weights after it
    (higher is better; None: no validation, the last epoch's weights stay); ``snapshot()`` copies the
    weights of a new best epoch (first best on ties) and ``restore(state)`` puts the best back at the
    end; ``patience`` epochs without improvement stop the loop (None: all ``epochs`` run)."""
    best_score, best_epoch, best_state, waited = -math.inf, 0, None, 0
    history: list[EpochLog] = []
    stopped = False
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        loss = train_epoch(epoch)
        score = None
        if evaluate is not None:
            score = float(evaluate())
            if score > best_score:
                best_score, best_epoch, waited = score, epoch, 0
                best_state = snapshot()
            else:
                waited += 1
        history.append(EpochLog(epoch, loss, score, time.perf_counter() - start))
        if callback is not None:
            callback(history[-1])
        if evaluate is not None and patience is not None and waited >= patience:
            stopped = epoch < epochs
            break
    if best_state is not None:
        restore(best_state)
    else:
        best_epoch = len(history)
    return FitResult(best_epoch, None if best_state is None else best_score, len(history), stopped, history)


@dataclass
class _Run:
    """The state one fit carries from step to step."""

    module: nn.Module
    optimizer: Any  # FusedAdam or torch.optim.Optimizer
    scaler: Any
    device: torch.device
    dtype: torch.dtype | None
    hooks: TrainingHooks
    generator: torch.Generator
    class_weights: dict[str, Tensor]


@dataclass
class Trainer:
    """Mini-batch training with early stopping on a validation score.

    ``patience``: epochs without improvement before stopping (None: run ``max_epochs``).
    Without validation rows the module keeps its last epoch's weights; with them, the
    best epoch's weights (first best on ties) are restored at the end.
    ``amp``: use mixed precision on CUDA (ignored on the CPU).
    ``fused``: use the fused Adam/AdamW implementation where torch has one for the device.
    ``callback``: called with each :class:`EpochLog` (progress display).
    """

    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    batch_size: int = 32
    max_epochs: int = 100
    patience: int | None = 10
    grad_clip: float | None = None
    eval_batch_size: int = 1024
    device: str = "auto"
    amp: bool = True
    fused: bool = True
    seed: int = 0
    callback: Callable[[EpochLog], None] | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ModelError(f"unknown optimizer {self.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        for name in ("batch_size", "max_epochs", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ModelError(f"trainer {name} must be >= 1, got {getattr(self, name)!r}")
        if self.patience is not None and self.patience < 1:
            raise ModelError(f"trainer patience must be >= 1 or None, got {self.patience!r}")
        if not self.lr > 0:
            raise ModelError(f"trainer lr must be > 0, got {self.lr!r}")

    def fit(
        self,
        module: nn.Module,
        inputs: Mapping[str, Any],
        labels: Mapping[str, Any],
        val_inputs: Mapping[str, Any] | None = None,
        val_labels: Mapping[str, np.ndarray] | None = None,
        *,
        score_fn: ScoreFn | None = None,
        class_weights: Mapping[str, Any] | None = None,
        unlabeled_inputs: Mapping[str, Any] | None = None,
    ) -> FitResult:
        """Train ``module`` in place (it is moved to the trainer's device).

        ``inputs``: key -> ``(n, ...)`` arrays; ``labels``: target -> ``(n,)`` int (-1 unknown);
        ``val_*`` the same for the validation rows, scored with ``score_fn(val_labels, proba)``
        (higher is better; default :func:`default_score`); ``class_weights``: target ->
        ``(n_classes,)``; ``unlabeled_inputs``: rows without labels, used only when the
        module defines ``unlabeled_loss``.
        """
        if (val_inputs is None) != (val_labels is None):
            raise DataError("validation inputs and validation labels must be given together")
        import torch

        device = resolve_device(self.device)
        module.to(device)
        train_x, train_y = to_tensors(inputs, device), to_tensors(labels, device)
        if _n_rows(train_x) != _n_rows(train_y):
            raise DataError(f"{_n_rows(train_x)} input rows but {_n_rows(train_y)} label rows")
        val_x = to_tensors(val_inputs, device) if val_inputs is not None else None
        hooks = hooks_of(module)
        unlabeled = None
        if unlabeled_inputs is not None and hooks.unlabeled_loss is not None:
            unlabeled = to_tensors(unlabeled_inputs, device)
        dtype = amp_dtype(device) if self.amp else None
        with seeded(self.seed, device):
            scaler = _grad_scaler() if dtype == torch.float16 else None
            run = _Run(
                module=module,
                optimizer=self._make_optimizer(module, device, scaler is not None),
                scaler=scaler,
                device=device,
                dtype=dtype,
                hooks=hooks,
                generator=torch.Generator().manual_seed(self.seed),
                class_weights={
                    t: torch.as_tensor(w, dtype=torch.float32, device=device) for t, w in (class_weights or {}).items()
                },
            )
            result = self._loop(run, train_x, train_y, val_x, val_labels, score_fn or default_score, unlabeled)
        module.eval()
        return result

    def _loop(
        self,
        run: _Run,
        train_x: dict[str, Tensor],
        train_y: dict[str, Tensor],
        val_x: dict[str, Tensor] | None,
        val_y: Mapping[str, np.ndarray] | None,
        score_fn: ScoreFn,
        unlabeled: dict[str, Tensor] | None,
    ) -> FitResult:
        evaluate = None if val_x is None else (lambda: score_fn(val_y, self.evaluate(run.module, val_x)))
        return run_epochs(
            self.max_epochs, self.patience, lambda epoch: self.train_epoch(run, train_x, train_y, unlabeled), evaluate,
            snapshot=lambda: {k: v.detach().clone() for k, v in run.module.state_dict().items()},
            restore=run.module.load_state_dict, callback=self.callback)

    def train_epoch(
        self,
        run: _Run,
        inputs: dict[str, Tensor],
        labels: dict[str, Tensor],
        unlabeled: dict[str, Tensor] | None = None,
    ) -> float:
        """One pass over the rows in a seeded random order; returns the mean loss per row."""
        import torch

        run.module.train()
        n = _n_rows(inputs)
        order = torch.randperm(n, generator=run.generator).to(run.device)
        steps = range(0, n, self.batch_size)
        extra = None
        if unlabeled is not None:
            n_unlabeled = _n_rows(unlabeled)
            extra = torch.randint(n_unlabeled, (len(steps), self.batch_size), generator=run.generator)
            extra = extra.to(run.device)
        total = torch.zeros((), device=run.device)
        for step, begin in enumerate(steps):
            index = order[begin : begin + self.batch_size]
            batch_unlabeled = _take(unlabeled, extra[step]) if extra is not None else None
            loss = self._step(run, _take(inputs, index), _take(labels, index), batch_unlabeled)
            total += loss.detach() * len(index)
        return float(total) / max(n, 1)

    def _step(
        self,
        run: _Run,
        batch: dict[str, Tensor],
        batch_labels: dict[str, Tensor],
        batch_unlabeled: dict[str, Tensor] | None,
    ) -> Tensor:
        import torch

        hooks = run.hooks
        if hooks.augment is not None:
            batch = hooks.augment(batch)
        with _autocast(run.device, run.dtype):
            outputs = run.module(batch)
            if hooks.loss is not None:
                loss = hooks.loss(outputs, batch_labels, run.class_weights)
            else:
                loss = supervised_loss(outputs, batch_labels, run.class_weights)
            if batch_unlabeled is not None:
                loss = loss + hooks.unlabeled_loss(batch_unlabeled)
        run.optimizer.zero_grad(set_to_none=True)
        if run.scaler is None:
            loss.backward()
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(run.module.parameters(), self.grad_clip)
            run.optimizer.step()
        else:
            run.scaler.scale(loss).backward()
            if self.grad_clip:
                run.scaler.unscale_(run.optimizer)
                torch.nn.utils.clip_grad_norm_(run.module.parameters(), self.grad_clip)
            run.scaler.step(run.optimizer)
            run.scaler.update()
        return loss

    def evaluate(self, module: nn.Module, inputs: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
        """Probabilities per target for rows already on the device, ``(n, n_classes)`` float64."""
        import torch

        device = next(iter(inputs.values())).device
        dtype = amp_dtype(device) if self.amp else None
        logits = predict_logits(module, inputs, batch_size=self.eval_batch_size, dtype=dtype)
        return {t: torch.softmax(v.double(), dim=1).cpu().numpy() for t, v in logits.items()}

    def _make_optimizer(self, module: nn.Module, device: torch.device, scaled: bool) -> Any:
        """The optimiser of a fit: :class:`~mer_ensemble.nn.optim.FusedAdam` where torch has the
        fused kernel for the device (same updates as ``torch.optim.Adam(fused=True)``, without
        its per-step Python work), else ``torch.optim`` (fused where possible). A float16
        gradient scaler needs a ``torch.optim`` optimiser."""
        import torch

        from mer_ensemble.nn.optim import FusedAdam, fused_kernel_available

        params = [p for p in module.parameters() if p.requires_grad]
        decoupled = self.optimizer == "adamw"
        if self.fused and not scaled and fused_kernel_available(device, decoupled):
            return FusedAdam(params, lr=self.lr, weight_decay=self.weight_decay, decoupled=decoupled)
        cls = torch.optim.AdamW if decoupled else torch.optim.Adam
        if self.fused:
            try:  # one kernel per step instead of several per parameter (CPU since torch 2.4, CUDA)
                return cls(params, lr=self.lr, weight_decay=self.weight_decay, fused=True)
            except (RuntimeError, TypeError, ValueError):
                pass
        return cls(params, lr=self.lr, weight_decay=self.weight_decay)
