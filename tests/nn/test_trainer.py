"""The torch trainer: masked losses, early stopping, determinism, module hooks, devices."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mer_ensemble.errors import DataError, ModelError
from mer_ensemble.nn import TrainingHooks
from mer_ensemble.nn.device import amp_dtype, available_threads, resolve_device
from mer_ensemble.nn.trainer import (
    Trainer,
    default_score,
    masked_cross_entropy,
    predict_proba,
    supervised_loss,
    to_tensors,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TwoHeads(nn.Module):
    """``x`` (b, 4) -> emotion (3 classes) and intent (2 classes) logits."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2))
        self.emotion = nn.Linear(16, 3)
        self.intent = nn.Linear(16, 2)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        h = self.body(inputs["x"])
        return {"emotion": self.emotion(h), "intent": self.intent(h)}


def make_rows(n: int = 64, seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    emotion = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    x[np.arange(n), emotion] += 2.0
    intent = rng.integers(0, 2, n)
    intent[::2] = -1
    return {"x": x}, {"emotion": emotion.astype(np.int64), "intent": intent.astype(np.int64)}


def trainer(**kwargs: Any) -> Trainer:
    return Trainer(**{"device": "cpu", "batch_size": 16, "max_epochs": 5, "patience": None, **kwargs})


# ---------------------------------------------------------------------------------------------
# losses


def test_masked_cross_entropy_matches_torch_on_known_rows() -> None:
    logits = torch.randn(10, 3)
    labels = torch.tensor([0, 1, -1, 2, -1, 0, 1, 2, -1, 1])
    known = labels >= 0
    expected = F.cross_entropy(logits[known], labels[known])
    torch.testing.assert_close(masked_cross_entropy(logits, labels), expected)
    weight = torch.tensor([0.5, 2.0, 1.0])
    weighted = F.cross_entropy(logits[known], labels[known], weight=weight)
    torch.testing.assert_close(masked_cross_entropy(logits, labels, weight), weighted)


def test_all_unknown_gives_zero_loss_and_zero_gradient() -> None:
    logits = torch.randn(4, 3, requires_grad=True)
    loss = masked_cross_entropy(logits, torch.full((4,), -1))
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(logits.grad) == 0


def test_supervised_loss_sums_targets() -> None:
    outputs = {"a": torch.randn(6, 3), "b": torch.randn(6, 2)}
    labels = {"a": torch.tensor([0, 1, 2, 0, 1, 2]), "b": torch.tensor([1, -1, 0, -1, 1, 0])}
    expected = masked_cross_entropy(outputs["a"], labels["a"]) + masked_cross_entropy(outputs["b"], labels["b"])
    torch.testing.assert_close(supervised_loss(outputs, labels), expected)


def test_default_score_skips_targets_without_labels() -> None:
    y = {"a": np.array([0, 1, 1]), "b": np.array([-1, -1, -1])}
    proba = {"a": np.eye(2)[[0, 1, 1]], "b": np.eye(2)[[0, 0, 0]]}
    assert default_score(y, proba) == 1.0


# ---------------------------------------------------------------------------------------------
# the loop


def test_unlabelled_target_head_is_untouched() -> None:
    X, y = make_rows()
    y["intent"][:] = -1
    module = TwoHeads()
    before = module.intent.weight.detach().clone()
    result = trainer().fit(module, X, y)
    assert torch.equal(module.intent.weight, before)
    assert result.best_epoch == 5 and result.epochs_run == 5 and result.best_score is None


def test_early_stopping_restores_the_best_epoch() -> None:
    X, y = make_rows()
    scores = iter([0.2, 0.6, 0.4, 0.6, 0.3, 0.9])
    seen: list[np.ndarray] = []

    def score_fn(y_val: dict, proba: dict) -> float:
        seen.append(proba["emotion"].copy())
        return next(scores)

    module = TwoHeads()
    result = trainer(max_epochs=6, patience=3, lr=0.05).fit(module, X, y, X, y, score_fn=score_fn)
    assert result.stopped_early and result.epochs_run == 5
    assert result.best_epoch == 2 and result.best_score == 0.6  # first best kept on ties
    assert [log.val_score for log in result.history] == [0.2, 0.6, 0.4, 0.6, 0.3]
    np.testing.assert_array_equal(predict_proba(module, X)["emotion"], seen[1])
    assert not np.array_equal(seen[1], seen[-1])


def test_same_seed_same_weights_and_global_rng_untouched() -> None:
    X, y = make_rows()
    first, second, other = TwoHeads(), TwoHeads(), TwoHeads()
    state = torch.get_rng_state()
    trainer(seed=7).fit(first, X, y, X, y)
    trainer(seed=7).fit(second, X, y, X, y)
    trainer(seed=8).fit(other, X, y, X, y)
    assert torch.equal(torch.get_rng_state(), state)
    for name, weights in first.state_dict().items():
        assert torch.equal(weights, second.state_dict()[name]), name
    assert not torch.equal(first.emotion.weight, other.emotion.weight)


def test_training_learns_and_class_weights_are_accepted() -> None:
    X, y = make_rows(200)
    module = TwoHeads()
    trainer(max_epochs=20, lr=1e-2).fit(module, X, y, class_weights={"emotion": np.array([1.0, 2.0, 0.5])})
    accuracy = (predict_proba(module, X)["emotion"].argmax(1) == y["emotion"]).mean()
    assert accuracy > 0.8


class Hooked(TwoHeads):
    """Counts hook calls; its own loss ignores the intent target."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = {"loss": 0, "augment": 0, "unlabeled_loss": 0}

    def training_hooks(self) -> TrainingHooks:
        return TrainingHooks(loss=self.loss, augment=self.augment, unlabeled_loss=self.unlabeled_loss)

    def loss(self, outputs: dict, labels: dict, class_weights: dict) -> torch.Tensor:
        self.calls["loss"] += 1
        return masked_cross_entropy(outputs["emotion"], labels["emotion"])

    def augment(self, inputs: dict) -> dict:
        assert self.training
        self.calls["augment"] += 1
        return {"x": inputs["x"] + 0.01 * torch.randn_like(inputs["x"])}

    def unlabeled_loss(self, inputs: dict) -> torch.Tensor:
        self.calls["unlabeled_loss"] += 1
        assert inputs["x"].shape == (16, 4)
        probs = torch.softmax(self(inputs)["emotion"], dim=1)
        return 0.1 * (probs * probs.clamp(min=1e-8).log()).sum(dim=1).mean().neg()


def test_module_hooks_are_called() -> None:
    X, y = make_rows(48)
    unlabeled = {"x": np.random.default_rng(1).normal(size=(20, 4)).astype(np.float32)}
    module = Hooked()
    before = module.intent.weight.detach().clone()
    trainer(max_epochs=2).fit(module, X, y, X, y, unlabeled_inputs=unlabeled)
    assert module.calls == {"loss": 6, "augment": 6, "unlabeled_loss": 6}  # 3 steps x 2 epochs
    assert torch.equal(module.intent.weight, before)


def test_bad_settings_and_inputs() -> None:
    with pytest.raises(ModelError, match="optimizer 'sgd'"):
        Trainer(optimizer="sgd")
    with pytest.raises(ModelError, match="batch_size"):
        Trainer(batch_size=0)
    with pytest.raises(DataError, match="number of rows"):
        to_tensors({"a": np.zeros((3, 2)), "b": np.zeros((4, 2))}, "cpu")
    X, y = make_rows()
    with pytest.raises(DataError, match="together"):
        trainer().fit(TwoHeads(), X, y, X, None)


def test_to_tensors_dtypes_and_read_only_arrays() -> None:
    frozen = np.arange(6, dtype=np.float64).reshape(3, 2)
    frozen.flags.writeable = False
    out = to_tensors({"x": frozen, "lengths": np.array([1, 2, 3], dtype=np.int32)}, "cpu")
    assert out["x"].dtype == torch.float32 and out["lengths"].dtype == torch.int64


# ---------------------------------------------------------------------------------------------
# devices


def test_resolve_device() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ModelError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            resolve_device("cuda")
    assert amp_dtype("cpu") is None


def test_available_threads_follows_torch_limit() -> None:
    assert available_threads() == 1  # the fixture set torch to one thread


def test_mixed_precision_path_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The autocast branch used on CUDA, exercised on the CPU with bfloat16."""
    import mer_ensemble.nn.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "amp_dtype", lambda device: torch.bfloat16)
    X, y = make_rows(96)
    module = TwoHeads()
    result = trainer(max_epochs=3, lr=1e-2).fit(module, X, y, X, y)
    assert np.isfinite([log.train_loss for log in result.history]).all()
    proba = predict_proba(module, X)
    assert proba["emotion"].dtype == np.float64
    np.testing.assert_allclose(proba["emotion"].sum(axis=1), 1.0)
