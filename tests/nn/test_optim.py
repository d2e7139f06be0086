"""FusedAdam: torch's fused Adam/AdamW kernel called directly gives torch's updates bit for bit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mer_ensemble.nn.optim import FusedAdam, fused_kernel_available

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.ModuleDict({"body": nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Dropout(0.3)),
                         "a": nn.Linear(16, 3), "unused": nn.Linear(16, 2)})
    return net


def _train(make_optimizer, steps: int = 25) -> list[torch.Tensor]:
    net = _net()
    opt = make_optimizer([p for p in net.parameters()])
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 12, generator=gen)
    y = torch.randint(0, 3, (64,), generator=gen)
    torch.manual_seed(2)
    for step in range(steps):
        idx = torch.randint(0, 64, (16,), generator=gen)
        logits = net["a"](net["body"](x[idx]))
        loss = nn.functional.cross_entropy(logits, y[idx])
        if step % 5 == 4:  # a parameter with a gradient only now and then
            loss = loss + net["unused"](net["body"](x[idx])).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("decoupled", [False, True])
def test_fused_adam_equals_torch_fused_adam_bit_for_bit(decoupled: bool) -> None:
    cpu = torch.device("cpu")
    if not fused_kernel_available(cpu, decoupled):
        pytest.skip("this torch has no fused CPU Adam kernel")
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    ours = _train(lambda ps: FusedAdam(ps, lr=3e-3, weight_decay=1e-2, decoupled=decoupled))
    theirs = _train(lambda ps: cls(ps, lr=3e-3, weight_decay=1e-2, fused=True))
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
    # and it did train: the weights moved
    assert not torch.equal(ours[0], _net()["body"][0].weight)
