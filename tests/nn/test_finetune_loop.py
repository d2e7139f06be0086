"""The fine-tuning pieces of the low training layer: the warm-up schedule, layer-wise learning
rates, the batch loop's early stopping and best-epoch restore, and length-bucketed batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mer_ensemble.errors import ModelError
from mer_ensemble.finetune.inputs import BUCKET_BATCHES, bucketed_batches
from mer_ensemble.nn.batch_loop import BatchLoop, trainable_state
from mer_ensemble.nn.schedule import layer_index, layerwise_groups, warmup_linear

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_warmup_then_linear_decay() -> None:
    factor = warmup_linear(total_steps=10, warmup_steps=2)
    values = [factor(step) for step in range(11)]
    assert values[0] < values[1] < values[2] == 1.0  # rises over the warm-up
    assert all(a > b for a, b in zip(values[2:], values[3:], strict=False))  # then falls
    assert values[10] == 0.0 and min(values) >= 0.0
    assert warmup_linear(5, 0)(0) == 1.0


@pytest.mark.parametrize(("name", "depth"), [
    ("embeddings.word_embeddings.weight", 0),
    ("encoder.layer.0.attention.self.query.weight", 1),
    ("encoder.layer.5.output.dense.bias", 6),
    ("encoder.layer.3.attention.self.query.lora_A.default.weight", 4),
    ("layers.1.self_attn.q_proj.weight", 2),  # Whisper / wav2vec2 encoders
    ("feature_extractor.conv_layers.0.conv.weight", 0),
    ("conv1.weight", 0),
    ("pooler.dense.weight", 7),
])
def test_layer_index(name: str, depth: int) -> None:
    assert layer_index(name, n_layers=6) == depth


def test_layerwise_groups_decay_towards_the_embeddings() -> None:
    blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    encoder = nn.ModuleDict({"embeddings": nn.Linear(2, 2), "layer": blocks})
    head = nn.Linear(2, 3)
    encoder["embeddings"].bias.requires_grad_(False)
    groups = layerwise_groups(encoder.named_parameters(), head.named_parameters(), n_layers=3, lr=1.0, decay=0.5,
                              head_lr=10.0, weight_decay=0.01)
    rate = {(g["depth"], g["weight_decay"] > 0): g["lr"] for g in groups}
    assert rate[(3, True)] == 1.0 and rate[(2, True)] == 0.5 and rate[(1, True)] == 0.25
    assert rate[(0, True)] == 0.125 and rate[(-1, True)] == 10.0
    assert rate[(1, False)] == 0.25  # biases: same rate, no weight decay
    assert (0, False) not in rate  # a frozen parameter is in no group
    counted = sum(len(g["params"]) for g in groups)
    assert counted == sum(1 for p in [*encoder.parameters(), *head.parameters()] if p.requires_grad)


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.frozen = nn.Linear(1, 1)
        self.frozen.requires_grad_(False)
        self.linear = nn.Linear(2, 2)
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, inputs: dict) -> dict:
        self.seen += 1
        return {"t": self.linear(inputs["x"])}


def test_batch_loop_restores_the_best_epoch_and_stops() -> None:
    torch.manual_seed(0)
    module = Toy()
    optimizer = torch.optim.SGD(module.linear.parameters(), lr=0.1)
    x, y = torch.randn(8, 2), torch.tensor([0, 1] * 4)
    scores = iter([0.5, 0.9, 0.7, 0.6, 0.95])
    snapshots = []

    def evaluate() -> float:
        snapshots.append(module.linear.weight.detach().clone())
        return next(scores)

    loop = BatchLoop(epochs=5, patience=2)
    result = loop.fit(module, optimizer, lambda epoch: [({"x": x}, {"t": y})],
                      lambda out, lab: nn.functional.cross_entropy(out["t"], lab["t"]), evaluate=evaluate)
    assert (result.best_epoch, result.epochs_run, result.stopped_early) == (2, 4, True)
    torch.testing.assert_close(module.linear.weight, snapshots[1])
    assert set(trainable_state(module)) == {"linear.weight", "linear.bias", "seen"}
    with pytest.raises(ModelError, match="epochs must be >= 1"):
        BatchLoop(epochs=0)


def test_bucketed_batches_cover_every_row_once() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, 1000)
    batches = bucketed_batches(lengths, 8, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    # inside a bucket rows are sorted by length, so a batch's spread is small
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 10 and len(batches) == 125
    assert BUCKET_BATCHES * 8 < 1000  # more than one bucket, so the batch order is shuffled across buckets
    predicted = bucketed_batches(lengths, 64, None)
    assert np.array_equal(np.concatenate(predicted), np.argsort(-lengths, kind="stable"))
