"""The seed methods of the fusion families: cross-modal distribution matching, task
interaction and noise robustness (modality dropout, feature noise, noisy variants)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from mer_ensemble.config import load_config
from mer_ensemble.data import load_dataset, load_or_make_folds
from mer_ensemble.errors import DataError, ModelError
from mer_ensemble.experiment import Experiment, data_settings
from mer_ensemble.models import create_model
from mer_ensemble.models._inputs import variant_key
from mer_ensemble.models.attention_fusion import AttentionFusionModel
from mer_ensemble.models.nets.attention_fusion import AttentionFusionNet
from mer_ensemble.models.nets.audio_text_fusion import AudioTextFusionNet
from mer_ensemble.models.nets.seed_methods import TrainingOptions, aux_key, cross_modal_mismatch, rampup
from mer_ensemble.training.runner import train_all
from tests.conftest import write_config, write_generic
from tests.models.test_models import DIMS, MODALITIES, TARGETS, make_data, rows

FAST = {"hidden": 16, "epochs": 6, "patience": 3, "batch_size": 16}
MODS = [("audio", 8, "utt"), ("text", 6, "utt")]
NET_TARGETS = [("emotion", 3), ("intent", 2)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def net(seed: int = 0, **kwargs: Any) -> AttentionFusionNet:
    torch.manual_seed(seed)
    return AttentionFusionNet(MODS, 16, 0.0, NET_TARGETS, **kwargs)


def batch(n: int = 12, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"audio": torch.randn(n, 8, generator=g), "text": torch.randn(n, 6, generator=g)}


def model(name: str = "attention_fusion", seed: int = 0, **params: Any) -> Any:
    return create_model(
        name, targets=TARGETS, feature_dims=DIMS, modalities=MODALITIES, seed=seed, device="cpu", **{**FAST, **params}
    )


# ---------------------------------------------------------------------------------------------
# cross-modal distribution matching


def test_mismatch_is_zero_when_heads_agree_and_positive_when_they_disagree() -> None:
    logits = torch.randn(10, 4)
    assert float(cross_modal_mismatch([logits, logits + 3.0, logits.clone()])) == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(10, 4)
    value = float(cross_modal_mismatch([logits, other]))
    assert value > 0
    assert value == pytest.approx(float(cross_modal_mismatch([other, logits])), rel=1e-6)  # symmetric
    extreme = torch.tensor([[50.0, 0.0], [0.0, 50.0]])
    assert float(cross_modal_mismatch([extreme, extreme.flip(1)])) == pytest.approx(math.log(2), rel=1e-4)  # max


def test_matching_term_on_unlabelled_rows() -> None:
    plain = net()
    assert plain.loss is None and plain.augment is None and plain.unlabeled_loss is None
    assert plain.aux_heads is None
    cmdm = net(options=TrainingOptions(aux_weight=1.0, cmdm_weight=2.0, cmdm_rampup=0))
    assert cmdm.unlabeled_loss is not None and cmdm.loss is not None
    # heads that ignore their input and share a bias agree on every row: the term is 0
    for heads in cmdm.aux_heads:
        for linear in heads.linears:
            torch.nn.init.zeros_(linear.weight)
            torch.nn.init.constant_(linear.bias, 0.5)
    assert float(cmdm.unlabeled_loss(batch()).detach()) == pytest.approx(0.0, abs=1e-7)
    # heads that read their modality disagree: the term is positive and trains the heads and
    # encoders, not the fused heads
    torch.nn.init.normal_(cmdm.aux_heads[0].linears[0].weight)
    loss = cmdm.unlabeled_loss(batch())
    assert float(loss.detach()) > 0
    loss.backward()
    assert cmdm.aux_heads[0].linears[0].weight.grad.abs().sum() > 0
    assert cmdm.encoders[0].net[1].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in cmdm.heads.parameters())


def test_matching_weight_ramps_up_over_epochs() -> None:
    cmdm = net(options=TrainingOptions(aux_weight=1.0, cmdm_weight=2.0, cmdm_rampup=3))
    cmdm.set_training_rows(40, 10)  # 4 steps per epoch, ramp over 12 steps
    weights = []
    for _ in range(14):
        weights.append(cmdm.matching_weight())
        cmdm.unlabeled_loss(batch(4))
    assert weights[0] == pytest.approx(2.0 * math.exp(-5))
    assert all(a <= b for a, b in zip(weights[:-1], weights[1:], strict=True))
    assert weights[12] == pytest.approx(2.0) and weights[13] == pytest.approx(2.0)
    assert rampup(0.5) == pytest.approx(math.exp(-1.25))


def test_auxiliary_heads_join_the_supervised_loss_in_training_only() -> None:
    aux = net(options=TrainingOptions(aux_weight=0.5))
    x = batch()
    labels = {"emotion": torch.randint(3, (12,)), "intent": torch.randint(2, (12,))}
    aux.train()
    out = aux(x)
    assert set(out) == {"emotion", "intent", *(aux_key(t, m) for t in ("emotion", "intent") for m in ("audio", "text"))}
    from mer_ensemble.nn import supervised_loss

    expected = (
        supervised_loss(out, labels)
        + 0.5
        * (
            supervised_loss({t: out[aux_key(t, "audio")] for t in labels}, labels)
            + supervised_loss({t: out[aux_key(t, "text")] for t in labels}, labels)
        )
        / 2
    )
    assert float(aux.loss(out, labels, {}).detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    aux.eval()
    assert set(aux(x)) == {"emotion", "intent"}


def test_cmdm_switches_on_the_pool_and_checks_its_inputs() -> None:
    assert not model().uses_unlabeled
    assert model(cmdm_weight=0.5).uses_unlabeled
    with pytest.raises(ModelError, match="aux_weight"):
        model(cmdm_weight=0.5, aux_weight=0)
    with pytest.raises(ModelError, match="at least two"):
        create_model(
            "attention_fusion",
            targets=TARGETS,
            feature_dims={"hubert": 8},
            modalities={"hubert": "audio"},
            cmdm_weight=1.0,
        )
    with pytest.raises(ModelError, match="cmdm_rampup"):
        model(cmdm_rampup=-1)


def test_cmdm_receives_only_pool_rows_in_a_train_all_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_generic(tmp_path / "d", n_train=45, n_test=9, n_pool=18)
    params = {**FAST, "epochs": 2, "cmdm_weight": 1.0, "standardize": False}  # raw rows, to compare bytes
    cfg = load_config(
        write_config(tmp_path / "c.yaml", root, models=[{"name": "attention_fusion", "id": "cmdm", "params": params}])
    )
    seen: list[tuple[Any, Any, Any]] = []
    original = AttentionFusionModel.fit

    def spy(self: Any, X: Any, y: Any, X_val: Any = None, y_val: Any = None, **kwargs: Any) -> Any:
        seen.append((X, X_val, kwargs.get("X_unlabeled")))
        return original(self, X, y, X_val, y_val, **kwargs)

    matched: list[np.ndarray] = []
    matching = AttentionFusionNet._matching_loss

    def spy_matching(self: Any, inputs: Any) -> Any:
        matched.append(inputs["audio"].detach().numpy().copy())
        return matching(self, inputs)

    monkeypatch.setattr(AttentionFusionModel, "fit", spy)
    monkeypatch.setattr(AttentionFusionNet, "_matching_loss", spy_matching)
    train_all(Experiment.open(cfg, tmp_path / "wd"), progress=False)
    ds = load_dataset(data_settings(cfg), tmp_path / "wd")
    features = ds.features["fa-UTT"].values
    as_set = lambda a: {r.tobytes() for r in np.asarray(a)}  # noqa: E731
    pool, test = as_set(features[ds.pool_rows]), as_set(features[ds.test_rows])
    assert len(seen) == 3
    for X, X_val, unlabeled in seen:
        assert X_val is None  # the fold's validation rows never reach fit (inner split only)
        assert unlabeled is not None and as_set(unlabeled["fa-UTT"]) == pool
        assert not as_set(unlabeled["fa-UTT"]) & (as_set(X["fa-UTT"]) | test)
    assert matched and all(as_set(rows_seen) <= pool for rows_seen in matched)  # the term saw pool rows only


# ---------------------------------------------------------------------------------------------
# task interaction


def test_interaction_off_builds_the_baseline_network() -> None:
    base, off = net(seed=3), net(seed=3, task_interaction=False, options=TrainingOptions())
    assert base.state_dict().keys() == off.state_dict().keys()
    for key, value in base.state_dict().items():
        assert torch.equal(value, off.state_dict()[key])
    base.eval(), off.eval()
    for target, logits in base(batch()).items():
        assert torch.equal(logits, off(batch())[target])


def test_interaction_off_equals_the_model_without_it() -> None:
    X, y = make_data(80, seed=2)
    plain = model(seed=4).fit(
        rows(X, slice(0, 60)), rows(y, slice(0, 60)), rows(X, slice(60, None)), rows(y, slice(60, None))
    )
    off = model(seed=4, task_interaction=False, cmdm_weight=0.0, modality_dropout=0.0).fit(
        rows(X, slice(0, 60)), rows(y, slice(0, 60)), rows(X, slice(60, None)), rows(y, slice(60, None))
    )
    for target in TARGETS:
        np.testing.assert_array_equal(plain.predict_proba(X)[target], off.predict_proba(X)[target])


@pytest.mark.parametrize("interaction", [False, True])
def test_targets_are_independent_only_without_interaction(interaction: bool) -> None:
    network = net(task_interaction=interaction, interaction_heads=2).eval()
    before = network(batch())
    with torch.no_grad():  # change what only the intent target owns
        owned = network.heads.project[1] if interaction else network.heads.linears[1]
        for p in owned.parameters():
            p.add_(torch.randn_like(p))
    after = network(batch())
    assert not torch.allclose(before["intent"], after["intent"])
    assert torch.allclose(before["emotion"], after["emotion"]) is (not interaction)


def test_closed_gate_reduces_interaction_to_separate_heads() -> None:
    network = net(task_interaction=True, interaction_heads=2).eval()
    block = network.heads
    with torch.no_grad():
        for gate in block.gates:
            torch.nn.init.zeros_(gate.weight)
            torch.nn.init.constant_(gate.bias, -1e4)
    fused, _ = network.fuse(network.encode(batch()))
    for k, target in enumerate(block.names):
        alone = block.linears[k](block.norms[k](block.project[k](fused)))
        assert torch.allclose(network(batch())[target], alone, atol=1e-6)


def test_interaction_needs_two_targets_and_round_trips(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="two targets"):
        create_model(
            "attention_fusion", targets={"emotion": 3}, feature_dims=DIMS, modalities=MODALITIES, task_interaction=True
        )
    with pytest.raises(ModelError, match="divisible"):
        model(task_interaction=True, interaction_heads=3)
    X, y = make_data(60)
    for name in ("attention_fusion", "audio_text_fusion"):
        fitted = model(name, task_interaction=True, aux_weight=0.3).fit(X, y)
        fitted.save(str(tmp_path / f"{name}.pt"))
        loaded = type(fitted).load(str(tmp_path / f"{name}.pt"))
        np.testing.assert_array_equal(loaded.predict_proba(X)["intent"], fitted.predict_proba(X)["intent"])


# ---------------------------------------------------------------------------------------------
# noise robustness


def test_modality_dropout_zeroes_whole_modalities() -> None:
    network = net(options=TrainingOptions(modality_dropout=0.6))
    ones = {"audio": torch.ones(400, 8), "text": torch.ones(400, 6)}
    torch.manual_seed(0)
    out = network.augment(ones)
    kept = {}
    for key, x in out.items():
        row_max, row_min = x.amax(dim=1), x.amin(dim=1)
        assert torch.equal(row_max, row_min), f"{key}: a row was partly zeroed"
        kept[key] = row_max.bool()
    assert (kept["audio"] | kept["text"]).all(), "a row lost every modality"
    dropped = 1 - torch.stack(list(kept.values())).float().mean()
    assert 0.25 < float(dropped) < 0.6
    single = AttentionFusionNet(
        [("audio", 8, "utt")], 16, 0.0, NET_TARGETS, options=TrainingOptions(modality_dropout=0.9)
    )
    assert torch.equal(single.augment({"audio": torch.ones(50, 8)})["audio"], torch.ones(50, 8))


def test_feature_noise_is_relative_to_the_feature_std() -> None:
    network = net(options=TrainingOptions(feature_noise=0.5))
    network.set_noise_scale({"audio": torch.full((8,), 4.0), "text": torch.full((6,), 0.1)})
    x = {"audio": torch.zeros(4000, 8), "text": torch.zeros(4000, 6)}
    torch.manual_seed(0)
    out = network.augment(x)
    assert float(out["audio"].std()) == pytest.approx(2.0, rel=0.05)
    assert float(out["text"].std()) == pytest.approx(0.05, rel=0.05)


def test_variant_mixing_swaps_rows_and_drops_reserved_keys() -> None:
    network = net(options=TrainingOptions(variant_prob=0.5))
    x = {
        **batch(2000),
        variant_key("audio", 0): torch.full((2000, 8), 7.0),
        variant_key("audio", 1): torch.full((2000, 8), -7.0),
    }
    torch.manual_seed(0)
    out = network.augment(x)
    assert set(out) == {"audio", "text"} and torch.equal(out["text"], x["text"])
    first = out["audio"][:, 0]
    share = {v: float((first == v).float().mean()) for v in (7.0, -7.0)}
    assert share[7.0] == pytest.approx(0.25, abs=0.04) and share[-7.0] == pytest.approx(0.25, abs=0.04)
    swapped = (first == 7.0) | (first == -7.0)
    assert torch.equal(out["audio"][~swapped], x["audio"][~swapped])


def test_variants_are_seen_in_training_batches_only(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = make_data(60, seed=3)
    marker = np.full_like(X["hubert"], 1000.0)
    calls: list[tuple[bool, bool]] = []
    original = AttentionFusionNet.encode

    def spy(self: Any, inputs: Any) -> Any:
        calls.append((self.training, bool((inputs["audio"] == 1000.0).any())))
        return original(self, inputs)

    monkeypatch.setattr(AttentionFusionNet, "encode", spy)
    fitted = model(variant_prob=1.0, standardize=False).fit(
        rows(X, slice(0, 40)),
        rows(y, slice(0, 40)),
        rows(X, slice(40, None)),
        rows(y, slice(40, None)),
        X_variants={"hubert": [marker[:40]]},
    )
    fitted.predict_proba(X)
    training = [saw for is_training, saw in calls if is_training]
    evaluation = [saw for is_training, saw in calls if not is_training]
    assert training and all(training), "variant_prob=1 must put the variant in every training batch"
    assert evaluation and not any(evaluation), "a validation or prediction batch saw a variant row"
    assert model().uses_variants is False and model(variant_prob=0.2).uses_variants is True


def test_variants_must_match_the_training_rows() -> None:
    X, y = make_data(30)
    with pytest.raises(DataError, match="noise variant 0 of 'hubert'.*30 training rows"):
        model(variant_prob=0.5).fit(X, y, X_variants={"hubert": [X["hubert"][:10]]})
    with pytest.raises(DataError, match="not an input feature"):
        model(variant_prob=0.5).fit(X, y, X_variants={"clip": [X["hubert"]]})


def test_noise_options_run_on_audio_text_fusion() -> None:
    network = AudioTextFusionNet(
        8, 6, 16, 0.0, NET_TARGETS, sequence=False, options=TrainingOptions(modality_dropout=0.5, variant_prob=1.0)
    )
    x = {**batch(), variant_key("text", 0): torch.zeros(12, 6)}
    out = network.augment(x)
    assert torch.equal(out["text"], torch.zeros(12, 6))
    network.eval()
    assert set(network(out)) == {"emotion", "intent"}


def _write_variant(root: Path, names: list[str], shift: float) -> str:
    folder = root / "features" / f"fa_{int(shift)}_UTT"
    folder.mkdir(parents=True)
    for name in names:
        clean = np.load(root / "features" / "fa-UTT" / f"{name}.npy")
        np.save(folder / f"{name}.npy", clean + shift)
    return folder.name


def test_noise_variants_load_and_reach_training_rows_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_generic(tmp_path / "d", n_train=45, n_test=9, n_pool=6)
    import pandas as pd

    table = pd.read_csv(root / "labels.csv")
    train_names = list(table.loc[table["split"] == "train", "name"])
    variant = _write_variant(root, train_names, 50.0)  # training rows only, like MER2024's noisy copies
    models = [
        {"name": "attention_fusion", "id": "mix", "params": {**FAST, "epochs": 2, "variant_prob": 0.5}},
        {"name": "linear", "id": "lin"},
    ]
    cfg_path = write_config(tmp_path / "c.yaml", root, models=models)
    raw = yaml.safe_load(cfg_path.read_text())
    raw["data"]["noise_variants"] = {"fa-UTT": [variant]}
    cfg_path.write_text(yaml.safe_dump(raw))
    cfg = load_config(cfg_path)
    ds = load_dataset(data_settings(cfg), tmp_path / "wd")
    (block,) = ds.variants["fa-UTT"]
    train = ds.rows("train")
    np.testing.assert_allclose(block.values[train], ds.features["fa-UTT"].values[train] + 50.0, rtol=1e-6)
    others = np.setdiff1d(np.arange(ds.n_rows), train)
    np.testing.assert_array_equal(block.values[others], ds.features["fa-UTT"].values[others])

    seen: list[tuple[int, Any]] = []
    original = AttentionFusionModel.fit

    def spy(self: Any, X: Any, y: Any, X_val: Any = None, y_val: Any = None, **kwargs: Any) -> Any:
        seen.append((len(X["fa-UTT"]), kwargs.get("X_variants")))
        return original(self, X, y, X_val, y_val, **kwargs)

    monkeypatch.setattr(AttentionFusionModel, "fit", spy)
    records = train_all(Experiment.open(cfg, tmp_path / "wd"), progress=False)  # the linear model runs without variants
    assert {r.key for r in records} == {"mix", "lin"}
    folds = load_or_make_folds(ds, tmp_path / "wd", 3)
    assert len(seen) == 3
    for n_train, variants in seen:
        (rows_of_variant,) = variants["fa-UTT"]
        assert len(rows_of_variant) == n_train < len(folds.rows)
        assert (rows_of_variant.min(axis=1) > 20).all()  # every row is a shifted training row

    raw["data"]["noise_variants"] = {"fa-UTT": [_write_variant(root, train_names[:-1], 9.0)]}
    cfg_path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DataError, match="fa_9_UTT lacks 1 labelled name"):
        load_dataset(data_settings(load_config(cfg_path)), None)
    raw["data"]["noise_variants"] = {"fb-UTT": [variant]}
    cfg_path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DataError, match="dimension 8, not 6"):
        load_dataset(data_settings(load_config(cfg_path)), None)
