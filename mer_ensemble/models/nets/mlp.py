"""The network of the ``mlp`` family."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from mer_ensemble.models.nets.layers import Standardize, TargetHeads
from mer_ensemble.nn.modules import TrainableNet

__all__ = ["MLPNet"]


class MLPNet(TrainableNet):
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
