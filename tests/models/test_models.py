"""Contract tests run over every registered model family, plus registry and fusion checks.

Any family added with ``register_model`` is picked up by the parametrised tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mer_ensemble.data.dataset import Frames
from mer_ensemble.errors import DataError, ModelError
from mer_ensemble.models import (
    MerModel,
    _registry,
    create_model,
    get_model_class,
    list_models,
    model_defaults,
    register_model,
)

TARGETS = {"emotion": 3, "intent": 2}
DIMS = {"hubert": 8, "roberta": 6}
MODALITIES = {"hubert": "audio", "roberta": "text"}
#: small settings so that every family trains in well under a second
FAST = {"epochs": 12, "patience": 4, "hidden": 32, "n_estimators": 20, "max_iter": 300, "batch_size": 16}
FRAME_MODELS = [name for name in list_models() if get_model_class(name).input_level == "frame"]
#: families that train on raw inputs alone (no feature blocks): they get the rows' text under raw:text
RAW_MODELS = [name for name in list_models() if not getattr(get_model_class(name), "needs_features", True)]
#: their parameters: a tiny random checkpoint (set by the fixture below) and rates a random encoder learns at
RAW_PARAMS: dict[str, Any] = {"lr": 3e-3, "head_lr": 3e-3, "layer_decay": 1.0, "warmup": 0.0, "keep_weights": True}
EMOTION_WORDS = (("happy", "glad", "joy"), ("sad", "cry", "alone"), ("angry", "mad", "hate"))
INTENT_WORDS = (("why", "what", "how"), ("okay", "fine", "yes"))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True, scope="module")
def _raw_checkpoint(tiny_checkpoints: dict) -> None:
    RAW_PARAMS["checkpoint"] = str(tiny_checkpoints["bert"])


def make_data(n: int, seed: int = 0, separation: float = 3.0) -> tuple[dict, dict]:
    """Audio carries the emotion, text the intent; intent unknown on every third row. The raw
    text (``raw:text``, for families that read it) names both in words.

    Returns ``X`` (feature -> ``(n, D)`` float32, ``raw:text`` -> ``(n,)`` str) and ``y``
    (target -> ``(n,)`` int64).
    """
    rng = np.random.default_rng(seed)
    emotion = rng.integers(0, 3, n)
    intent = rng.integers(0, 2, n)
    audio = rng.normal(size=(n, DIMS["hubert"])).astype(np.float32)
    text = rng.normal(size=(n, DIMS["roberta"])).astype(np.float32)
    audio[np.arange(n), emotion] += separation
    text[np.arange(n), intent] += separation
    words = [f"{rng.choice(EMOTION_WORDS[e])} the {rng.choice(INTENT_WORDS[i])} {rng.choice(['go', 'see', 'come'])}"
             for e, i in zip(emotion, intent, strict=True)]
    intent[::3] = -1
    X = {"hubert": audio, "roberta": text, "raw:text": np.array(words, dtype=object)}
    return X, {"emotion": emotion.astype(np.int64), "intent": intent.astype(np.int64)}


def to_frames(audio: np.ndarray, seed: int = 0, max_len: int = 7) -> Frames:
    """Frame-level audio ``(n, T, D)``: every real frame is the utterance vector plus noise."""
    rng = np.random.default_rng(seed)
    n = len(audio)
    lengths = rng.integers(1, max_len + 1, n).astype(np.int64)
    x = audio[:, None, :] + 0.3 * rng.normal(size=(n, max_len, audio.shape[1])).astype(np.float32)
    x[np.arange(max_len)[None, :] >= lengths[:, None]] = 0.0
    return Frames(x.astype(np.float32), lengths)


def rows(X: dict, index: slice | np.ndarray) -> dict:
    return {k: Frames(v.x[index], v.lengths[index]) if isinstance(v, Frames) else v[index] for k, v in X.items()}


def problem(name: str) -> dict[str, Any]:
    """The feature dims and modalities family ``name`` is built with (none for raw-input families)."""
    if name in RAW_MODELS:
        return {"feature_dims": {}, "modalities": {}}
    return {"feature_dims": DIMS, "modalities": MODALITIES}


def build(name: str, seed: int = 0, **overrides: Any) -> MerModel:
    """Model ``name`` with the FAST settings and ``overrides``, each kept only where the family has it."""
    defaults = model_defaults(name)
    extra = RAW_PARAMS if name in RAW_MODELS else {}
    params = {k: v for k, v in {**FAST, **extra, **overrides}.items() if k in defaults}
    return create_model(name, targets=TARGETS, seed=seed, device="cpu", **problem(name), **params)


def create(name: str, **params: Any) -> MerModel:
    return create_model(name, targets=TARGETS, device="cpu", **problem(name), **params)


def fit_split(model: MerModel, X: dict, y: dict, n_train: int) -> MerModel:
    train, val = slice(0, n_train), slice(n_train, None)
    return model.fit(rows(X, train), rows(y, train), rows(X, val), rows(y, val))


def assert_probas(proba: dict, n: int) -> None:
    assert set(proba) == set(TARGETS)
    for target, n_classes in TARGETS.items():
        p = proba[target]
        assert p.shape == (n, n_classes)
        assert np.isfinite(p).all() and (p >= 0).all()
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# registry


def test_registry_lists_the_families() -> None:
    assert {"linear", "xgboost", "mlp", "audio_text_fusion", "attention_fusion"} <= set(list_models())
    assert list_models() == sorted(list_models())
    for name in list_models():
        assert get_model_class(name).name == name


def test_unknown_model_name_lists_valid_names() -> None:
    with pytest.raises(ModelError, match="unknown model 'nope'.*linear"):
        create_model("nope", targets=TARGETS, feature_dims=DIMS, modalities=MODALITIES)


def test_create_model_drops_none_params() -> None:
    model = create_model("mlp", targets=TARGETS, feature_dims=DIMS, modalities=MODALITIES, hidden=None, dropout=0.1)
    assert model.params["hidden"] == model_defaults("mlp")["hidden"]
    assert model.params["dropout"] == 0.1


def test_model_defaults_is_a_copy() -> None:
    model_defaults("mlp")["hidden"] = -1
    assert model_defaults("mlp")["hidden"] > 0


class TinyProbeModel(MerModel):
    """The smallest family: learns nothing, predicts nothing."""

    def _fit(self, data):  # noqa: ANN001
        pass

    def predict_proba(self, X):  # noqa: ANN001
        return {}

    def save(self, path):  # noqa: ANN001
        pass

    @classmethod
    def load(cls, path):  # noqa: ANN001
        return cls(targets={}, feature_dims={}, modalities={})


class RefProbeModel(TinyProbeModel):
    """A family this test module defines, registered by reference as a worker process would."""


def test_register_model_names_and_refuses_duplicates() -> None:
    try:
        register_model(TinyProbeModel)
        assert TinyProbeModel.name == "tiny_probe" and "tiny_probe" in list_models()
        with pytest.raises(ModelError, match="already registered"):
            register_model("linear")(TinyProbeModel)
    finally:
        _registry._MODELS.pop("tiny_probe", None)
        TinyProbeModel.name = ""


def test_a_family_is_found_by_reference_where_nothing_registered_it(monkeypatch) -> None:
    from mer_ensemble.models import model_ref, resolve_model

    monkeypatch.setattr(_registry, "_MODELS", dict(_registry._MODELS))
    assert model_ref("linear") == "mer_ensemble.models.linear:LinearModel"
    assert resolve_model("linear", "anything:Ignored") is get_model_class("linear"), "a registered name wins"
    ref = f"{RefProbeModel.__module__}:RefProbeModel"
    try:
        assert resolve_model("ref_probe", ref) is RefProbeModel and get_model_class("ref_probe") is RefProbeModel
    finally:
        RefProbeModel.name = ""
    with pytest.raises(ModelError, match=r"model 'gone': cannot import its class no_such_module:X here"):
        resolve_model("gone", "no_such_module:X")
    with pytest.raises(ModelError, match="unknown model 'gone'"):
        resolve_model("gone")


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, mer_ensemble.models; print(any(m in sys.modules for m in ('torch', 'xgboost', 'sklearn')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# the contract, for every registered family


@pytest.mark.parametrize("name", list_models())
def test_fit_predict_shapes_and_masked_targets(name: str) -> None:
    X, y = make_data(120)
    model = fit_split(build(name), X, y, 90)
    assert model.fit(rows(X, slice(0, 90)), rows(y, slice(0, 90))) is model  # validation rows are optional
    assert_probas(model.predict_proba(rows(X, slice(90, None))), 30)


@pytest.mark.parametrize("name", list_models())
def test_target_without_any_label(name: str) -> None:
    X, y = make_data(60)
    y = {"emotion": y["emotion"], "intent": np.full(60, -1, dtype=np.int64)}
    model = build(name).fit(X, y)
    assert_probas(model.predict_proba(X), 60)


@pytest.mark.parametrize("name", list_models())
def test_same_seed_same_probabilities(name: str) -> None:
    X, y = make_data(80)
    first = fit_split(build(name, seed=3), X, y, 60).predict_proba(X)
    second = fit_split(build(name, seed=3), X, y, 60).predict_proba(X)
    for target in TARGETS:
        np.testing.assert_array_equal(first[target], second[target])


@pytest.mark.parametrize("name", list_models())
def test_save_load_round_trip(name: str, tmp_path: Any) -> None:
    X, y = make_data(80)
    model = fit_split(build(name, class_weight="balanced"), X, y, 60)
    path = tmp_path / "sub" / f"{name}.model"
    model.save(str(path))
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    loaded = get_model_class(name).load(str(path))
    assert loaded.params == model.params and loaded.seed == model.seed
    before, after = model.predict_proba(X), loaded.predict_proba(X)
    for target in TARGETS:
        np.testing.assert_array_equal(before[target], after[target])


@pytest.mark.parametrize("name", list_models())
def test_unknown_and_invalid_params(name: str) -> None:
    with pytest.raises(ModelError, match="unknown parameter.*'bogus'"):
        create(name, bogus=1)
    with pytest.raises(ModelError, match="class_weight"):
        create(name, class_weight="inverse")


@pytest.mark.parametrize("name", list_models())
def test_bad_inputs_are_named(name: str) -> None:
    X, y = make_data(40)
    model = build(name)
    dropped = "raw:text" if name in RAW_MODELS else "roberta"
    with pytest.raises(DataError, match=dropped):
        model.fit({k: v for k, v in X.items() if k != dropped}, y)
    if name not in RAW_MODELS:
        with pytest.raises(DataError, match="hubert.*dimension 5"):
            model.fit({**X, "hubert": X["hubert"][:, :5]}, y)
    with pytest.raises(DataError, match="emotion"):
        model.fit(X, {**y, "emotion": y["emotion"] + 5})
    with pytest.raises(ModelError, match="not fitted"):
        model.predict_proba(X)


@pytest.mark.parametrize("name", list_models())
def test_learns_a_separable_problem(name: str) -> None:
    X, y = make_data(300, seed=1)
    model = fit_split(build(name, epochs=30, patience=8), X, y, 200)
    proba = model.predict_proba(rows(X, slice(200, None)))
    accuracy = (proba["emotion"].argmax(axis=1) == y["emotion"][200:]).mean()
    assert accuracy > 0.8, f"{name}: accuracy {accuracy:.2f} (chance 0.33)"


# ---------------------------------------------------------------------------------------------
# frame-level input and the fusion families


@pytest.mark.parametrize("name", FRAME_MODELS)
def test_frame_level_input(name: str, tmp_path: Any) -> None:
    X, y = make_data(150, seed=2)
    X["hubert"] = to_frames(X["hubert"], seed=2)
    model = fit_split(build(name, epochs=25, patience=8), X, y, 100)
    test = rows(X, slice(100, None))
    proba = model.predict_proba(test)
    assert_probas(proba, 50)
    assert (proba["emotion"].argmax(axis=1) == y["emotion"][100:]).mean() > 0.8
    # a longer padding at prediction time changes nothing
    padded = Frames(np.pad(test["hubert"].x, ((0, 0), (0, 5), (0, 0))), test["hubert"].lengths)
    np.testing.assert_allclose(model.predict_proba({**test, "hubert": padded})["emotion"], proba["emotion"], atol=1e-6)
    again = fit_split(build(name, epochs=25, patience=8), X, y, 100).predict_proba(test)
    np.testing.assert_array_equal(again["emotion"], proba["emotion"])
    model.save(str(tmp_path / "m.pt"))
    loaded = get_model_class(name).load(str(tmp_path / "m.pt"))
    np.testing.assert_array_equal(loaded.predict_proba(test)["emotion"], proba["emotion"])


def test_attention_fusion_three_modalities_transformer() -> None:
    X, y = make_data(90, seed=4)
    rng = np.random.default_rng(4)
    X["clip"] = rng.normal(size=(90, 5)).astype(np.float32)
    X["hubert"] = to_frames(X["hubert"], seed=4)
    X["roberta"] = to_frames(X["roberta"], seed=5, max_len=4)
    model = create_model(
        "attention_fusion",
        targets=TARGETS,
        feature_dims={**DIMS, "clip": 5, "wav2vec": 3},
        modalities={**MODALITIES, "clip": "video", "wav2vec": "audio"},
        device="cpu",
        seq_encoder="transformer",
        hidden=32,
        epochs=3,
    )
    X["wav2vec"] = rng.normal(size=(90, 3)).astype(np.float32)  # utterance-level, joins audio frames
    model.fit(X, y)
    assert [m[0] for m in model.config_["modalities"]] == ["audio", "text", "video"]
    assert model.config_["modalities"][0] == ["audio", 11, "frame"]
    import torch

    hidden = model.module_.encode({k: torch.as_tensor(v) for k, v in model._encode(X).items()})
    assert set(hidden) == {"audio", "text", "video"} and hidden["audio"].shape == (90, 32)
    assert_probas(model.predict_proba(X), 90)


def test_audio_text_fusion_needs_audio_and_text_only() -> None:
    with pytest.raises(ModelError, match="'audio' and 'text'.*missing modality \\['text'\\]"):
        create_model("audio_text_fusion", targets=TARGETS, feature_dims={"hubert": 8}, modalities={"hubert": "audio"})
    with pytest.raises(ModelError, match="video"):
        create_model(
            "audio_text_fusion",
            targets=TARGETS,
            feature_dims={**DIMS, "clip": 4},
            modalities={**MODALITIES, "clip": "video"},
        )


def test_missing_modality_is_named() -> None:
    with pytest.raises(ModelError, match="no modality given for feature\\(s\\) \\['roberta'\\]"):
        create_model("attention_fusion", targets=TARGETS, feature_dims=DIMS, modalities={"hubert": "audio"})


def test_utterance_model_pools_frames() -> None:
    X, y = make_data(60)
    model = build("mlp").fit(X, y)
    frames = Frames(np.repeat(X["hubert"][:, None, :], 3, axis=1), np.full(60, 3, dtype=np.int64))
    np.testing.assert_allclose(
        model.predict_proba({**X, "hubert": frames})["emotion"], model.predict_proba(X)["emotion"], atol=1e-6
    )


def test_models_import_only_the_low_training_layer() -> None:
    """models/ builds on mer_ensemble.nn; the k-fold runner (mer_ensemble.training) builds on models."""
    from pathlib import Path

    import mer_ensemble

    root = Path(mer_ensemble.__file__).parent
    for layer, forbidden in (("models", "mer_ensemble.training"), ("nn", "mer_ensemble.models"),
                             ("nn", "mer_ensemble.training")):
        for path in (root / layer).rglob("*.py"):
            imports = [line.strip() for line in path.read_text().splitlines()
                       if line.strip().startswith(("from mer_ensemble", "import mer_ensemble"))]
            bad = [line for line in imports if line.split()[1].startswith(forbidden)]
            assert not bad, f"{path} imports {forbidden}"


TORCH_MODELS = [name for name in list_models() if "candidates" in model_defaults(name)]


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_candidates_are_chosen_inside_the_training_rows_and_refit(name: str) -> None:
    """Without validation rows the family holds out part of the training rows, scores every
    candidate there, records the choice and trains the chosen one again on every row."""
    X, y = make_data(160)
    if get_model_class(name).input_level == "frame":
        X["hubert"] = to_frames(X["hubert"])
    candidates = [{"dropout": 0.1}, {"dropout": 0.5, "weight_decay": 1e-3}]
    model = build(name, candidates=candidates).fit(X, y)
    chosen = model.selected_
    assert len(chosen["candidate_scores"]) == 2
    assert chosen["candidate"] == int(np.argmax(chosen["candidate_scores"]))
    assert chosen["params"] == candidates[chosen["candidate"]]
    assert model.params["dropout"] == chosen["params"]["dropout"]
    assert chosen["inner_rows"] < 160 and chosen["refit_epochs"] >= 1
    assert_probas(model.predict_proba(X), 160)


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_bad_candidates_are_named(name: str) -> None:
    with pytest.raises(ModelError, match="candidates: unknown parameter"):
        create(name, candidates=[{"widht": 3}])
    with pytest.raises(ModelError, match="dropout"):
        create(name, candidates=[{"dropout": 7.0}])
    with pytest.raises(ModelError, match="candidates"):
        create(name, candidates={"dropout": 0.1})


@pytest.mark.parametrize("name", ["linear", "xgboost"])
def test_model_files_hold_plain_arrays_and_a_crafted_pickle_is_refused(name: str, tmp_path: Any) -> None:
    import pickle

    X, y = make_data(60)
    path = tmp_path / f"{name}.model"
    fit_split(build(name), X, y, 40).save(str(path))
    with np.load(path, allow_pickle=False) as npz:  # every entry reads without unpickling
        assert all(npz[k].dtype != object for k in npz.files)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):  # what a crafted joblib/pickle model file would run on load
            return (marker.write_text, ("code ran",))

    crafted = tmp_path / "crafted.model"
    crafted.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ModelError, match=r"crafted.model: cannot be read") as err:
        get_model_class(name).load(str(crafted))
    assert not marker.exists() and "pickle" not in str(err.value)


def test_nothing_in_the_package_unpickles_a_file() -> None:
    from pathlib import Path

    import mer_ensemble

    root = Path(mer_ensemble.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        for unsafe in ("joblib.load", "pickle.load", "allow_pickle=True", "weights_only=False"):
            assert unsafe not in text, f"{path} uses {unsafe}"
        if "torch.load(" in text:
            assert text.count("torch.load(") == text.count("weights_only=True"), path
