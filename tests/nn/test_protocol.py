"""The interface networks implement for the trainer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mer_ensemble.errors import ModelError
from mer_ensemble.nn import TrainableModule, TrainingHooks, hooks_of
from mer_ensemble.nn.modules import TrainableNet


def test_hooks_are_fields_of_one_dataclass():
    with pytest.raises(TypeError):
        TrainingHooks(los=lambda *a: None)  # a misspelt hook is an error, not a silent default
    assert TrainingHooks() == TrainingHooks(None, None, None)


def test_hooks_of_modules_with_and_without_the_protocol():
    plain = nn.Linear(2, 2)
    assert not isinstance(plain, TrainableModule) and hooks_of(plain) == TrainingHooks()

    class Net(TrainableNet):
        def forward(self, inputs):  # noqa: ANN001, ANN202
            return {"y": inputs["x"]}

    net = Net()
    assert isinstance(net, TrainableModule) and hooks_of(net) == TrainingHooks()

    class Wrong(Net):
        def training_hooks(self):  # noqa: ANN202
            return {"loss": None}

    with pytest.raises(ModelError, match="returned dict, not TrainingHooks"):
        hooks_of(Wrong())
    assert torch.equal(net({"x": torch.ones(1)})["y"], torch.ones(1))
