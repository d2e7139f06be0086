"""Adam/AdamW that call torch's fused kernel directly.

``torch.optim.Adam(fused=True)`` spends, per step, more Python time gathering its parameter
groups than the small networks here spend in some of their layers, and its first use in a
process imports ``torch._dynamo`` (1.5 s of CPU, about 3 s wall on a busy 2-core machine; paid
again by every worker process). :class:`FusedAdam` keeps the same state (``exp_avg``,
``exp_avg_sq`` and a float32 ``step`` per parameter, created at the parameter's first
gradient) and calls the same kernel (``torch._fused_adam_`` / ``torch._fused_adamw_``) with
the same arguments, so its updates are bit for bit those of torch's fused optimiser
(tested). Where the kernel is missing (older torch, other devices) the trainer uses
``torch.optim``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["FusedAdam", "fused_kernel_available"]

_AVAILABLE: dict[tuple[str, bool], bool] = {}


def fused_kernel_available(device: torch.device, decoupled: bool = False) -> bool:
    """Whether torch has a fused Adam (AdamW with ``decoupled``) kernel for ``device``'s type."""
    import torch

    key = (device.type, decoupled)
    if key not in _AVAILABLE:
        kernel = getattr(torch, "_fused_adamw_" if decoupled else "_fused_adam_", None)
        ok = kernel is not None and device.type in ("cpu", "cuda")
        if ok:
            try:  # CPU kernels exist from torch 2.4 on
                p = torch.zeros(2, device=device)
                kernel([p], [torch.ones_like(p)], [torch.zeros_like(p)], [torch.zeros_like(p)], [],
                       [torch.zeros((), dtype=torch.float32, device=device)], amsgrad=False, lr=1e-3, beta1=0.9,
                       beta2=0.999, weight_decay=0.0, eps=1e-8, maximize=False)
            except (RuntimeError, NotImplementedError, TypeError):
                ok = False
        _AVAILABLE[key] = ok
    return _AVAILABLE[key]


class FusedAdam:
    """Adam (``decoupled=False``, L2 penalty added to the gradient) or AdamW (``decoupled=True``)
    over ``params`` (one device, float32), with torch's defaults ``betas=(0.9, 0.999)``, ``eps=1e-8``."""

    def __init__(self, params: Iterable[Tensor], *, lr: float, weight_decay: float = 0.0,
                 decoupled: bool = False, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        import torch

        self.params = list(params)
        self.lr, self.weight_decay, self.eps = float(lr), float(weight_decay), float(eps)
        self.beta1, self.beta2 = (float(b) for b in betas)
        self._kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
        self.state: dict[int, tuple[Tensor, Tensor, Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every gradient (the next backward writes fresh ones)."""
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        import torch

        params, grads, avgs, squares, steps = [], [], [], [], []
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            state = self.state.get(i)
            if state is None:
                state = (torch.zeros_like(p, memory_format=torch.preserve_format),
                         torch.zeros_like(p, memory_format=torch.preserve_format),
                         torch.zeros((), dtype=torch.float32, device=p.device))
                self.state[i] = state
            params.append(p)
            grads.append(p.grad)
            avgs.append(state[0])
            squares.append(state[1])
            steps.append(state[2])
        if not params:
            return
        with torch.no_grad():
            torch._foreach_add_(steps, 1)
            self._kernel(params, grads, avgs, squares, [], steps, amsgrad=False, lr=self.lr, beta1=self.beta1,
                         beta2=self.beta2, weight_decay=self.weight_decay, eps=self.eps, maximize=False)
