"""Loading a dataset (data/load.py): labels encoded into the task's classes, features, the raw inputs
beside them, fingerprint; bad input named. The data layer reads DataSettings, never the config."""

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer_ensemble.config import load_config
from mer_ensemble.data import DataSettings, load_dataset
from mer_ensemble.data.load import data_targets, load_table, resolve_data_task
from mer_ensemble.errors import DataError
from mer_ensemble.experiment import data_settings
from tests.conftest import REPO, shared, write_config, write_generic


def test_generic_layout(generic_config: Path, tmp_path: Path):
    cfg = load_config(generic_config)
    ds = load_dataset(data_settings(cfg), tmp_path / "wd")
    assert ds.n_rows == 110
    assert len(ds.labelled_rows) == 60 and len(ds.test_rows) == 20 and len(ds.pool_rows) == 30
    assert ds.task.target("emotion").classes == ("anger", "joy", "neutral")
    assert (ds.labels["emotion"][ds.test_rows] == -1).all()
    assert ds.features["fa-UTT"].values.shape == (110, 8)
    assert ds.groups is not None and len(ds.fingerprint) == 16

def _broken(tmp_path: Path, breaker) -> Path:
    root = write_generic(tmp_path / "d")
    breaker(root)
    classes = {"emotion": ["anger", "joy", "neutral"], "sentiment": ["negative", "positive"]}
    return write_config(tmp_path / "c.yaml", root, **{"data.classes": classes})

@pytest.mark.parametrize(
    "breaker, message",
    [
        (lambda r: (r / "features" / "fa-UTT" / "utt0003.npy").unlink(), r"missing feature|utt0003"),
        (lambda r: np.save(r / "features" / "fa-UTT" / "utt0004.npy", np.zeros(9, np.float32)),
         r"utt0004.npy: shape \(9,\), expected \(8,\)"),
        (lambda r: np.save(r / "features" / "fa-UTT" / "utt0005.npy", np.full(8, np.nan, np.float32)),
         r"utt0005.npy: 8 NaN/inf"),
        (lambda r: (r / "labels.csv").write_text((r / "labels.csv").read_text().replace(",joy,", ",joyful,", 1)),
         r"emotion='joyful', not a class|emotion='joyful'"),
        (lambda r: (r / "labels.csv").write_text((r / "labels.csv").read_text().replace("utt0001,", "utt0000,", 1)),
         r"duplicate name 'utt0000'"),
        (lambda r: pd.read_csv(r / "labels.csv").drop(columns=["sentiment"]).to_csv(r / "labels.csv", index=False),
         r"labels.csv: missing column\(s\) \['sentiment'\]"),
        (lambda r: pd.read_csv(r / "labels.csv").query("split != 'test'").to_csv(r / "labels.csv", index=False),
         r"the test split is empty"),
        (lambda r: shutil.rmtree(r / "features" / "fb-UTT"), r"feature folder .*fb-UTT not found"),
        (lambda r: (r / "labels.csv").write_text((r / "labels.csv").read_text().replace(",train,", ",trian,", 1)),
         r"column split has 'trian'"),
    ],
)
def test_bad_input_is_named(tmp_path: Path, breaker, message: str):
    cfg = load_config(_broken(tmp_path, breaker))
    with pytest.raises(DataError, match=message):
        load_dataset(data_settings(cfg), tmp_path / "wd")
    assert not list((tmp_path / "wd").glob("cache/*.tmp-*"))

def test_labels_are_case_insensitive(tmp_path: Path):
    cfg = load_config(_broken(tmp_path, lambda r: (r / "labels.csv").write_text(
        (r / "labels.csv").read_text().replace(",neutral,", ",Neutral,"))))
    ds = load_dataset(data_settings(cfg), None)
    assert "neutral" in ds.task.target("emotion").classes and "Neutral" not in ds.task.target("emotion").classes

def test_shared_emodb_and_meld():

    emodb = shared("emodb")
    assert emodb.is_dir()
    ds = load_dataset(data_settings(load_config(REPO / "configs" / "emodb.yaml")), None)
    assert len(ds.labelled_rows) == 408 and len(ds.test_rows) == 127
    assert ds.features["whisper-tiny-UTT"].dim == 384 and ds.task.target("discrete").n_classes == 7
    shared("meld")
    start = time.perf_counter()
    meld = load_dataset(data_settings(load_config(REPO / "configs" / "meld.yaml")), None)
    assert time.perf_counter() - start < 120
    assert len(meld.pool_rows) == 7989 and len(meld.test_rows) == 2610
    assert meld.task.target_names == ["emotion", "sentiment"]


def test_the_data_layer_takes_data_settings_not_the_config(generic_config: Path):
    cfg = load_config(generic_config)
    with pytest.raises(TypeError, match=r"expected DataSettings, got Config; .*data_settings\(config\)"):
        load_dataset(cfg)
    settings = data_settings(cfg)
    assert isinstance(settings, DataSettings) and settings.root.is_absolute()
    assert load_dataset(settings).n_rows == 110


def test_targets_come_from_the_preset_the_settings_or_the_layout(tmp_path: Path):
    base = DataSettings(layout="generic", root=tmp_path, features={"audio": ["a"]})
    assert data_targets(DataSettings(**{**base.__dict__, "task": "mer2024-semi"})) == ["discrete"]
    assert data_targets(DataSettings(**{**base.__dict__, "targets": ["emotion"]})) == ["emotion"]
    assert data_targets(DataSettings(**{**base.__dict__, "layout": "meiju"})) == ["emotion", "intent"]
    with pytest.raises(DataError, match="data.targets: the generic layout needs a list of label columns"):
        data_targets(base)


def test_generic_classes_come_from_the_labelled_rows(generic_root: Path, tmp_path: Path):
    settings = data_settings(load_config(write_config(tmp_path / "c.yaml", generic_root)))
    table = load_table(settings)
    task = resolve_data_task(settings, table)
    assert task.target("sentiment").classes == ("negative", "positive")
    table.loc[table["split"] == "train", "sentiment"] = None
    with pytest.raises(DataError, match="target 'sentiment' has no known label in the train/dev rows"):
        resolve_data_task(settings, table)


def _labels_with_text(root: Path, **texts: str) -> None:
    labels = pd.read_csv(root / "labels.csv", dtype=str, keep_default_na=False)
    for name, text in texts.items():
        labels.loc[labels["name"] == name, "text"] = text
    labels.to_csv(root / "labels.csv", index=False)


def test_raw_text_beside_the_features_keys_only_the_raw_digest(tmp_path: Path):
    root = write_generic(tmp_path / "d", text=True)
    _labels_with_text(root, utt0002="", utt0075="  ")
    settings = data_settings(load_config(write_config(tmp_path / "c.yaml", root)))
    ds = load_dataset(settings)
    text = ds.raw["text"]
    assert set(ds.raw) == {"text"} and text.shape == (110,) and text.dtype == object
    assert text[2] is None and text[75] is None and text[0].startswith("word")
    before = (ds.fingerprint, ds.raw_digests["text"])
    _labels_with_text(root, utt0000="a different text")
    after = load_dataset(settings)
    assert after.fingerprint == before[0], "feature runs keep their folders when only the text changes"
    assert after.raw_digests["text"] != before[1], "runs that read the text train again"
    named = write_config(tmp_path / "c2.yaml", root, **{"data.text_column": "dialogue"})
    assert load_dataset(data_settings(load_config(named))).raw["text"][0] == "d0"
    plain = write_generic(tmp_path / "plain")
    assert load_dataset(data_settings(load_config(write_config(tmp_path / "c3.yaml", plain)))).raw == {}


def _mer2024(root: Path, names: list[str]) -> None:
    root.mkdir(parents=True)
    pd.DataFrame({"name": names[:8], "discrete": ["neutral", "angry"] * 4}).to_csv(root / "label-disdim.csv",
                                                                                  index=False)
    pd.DataFrame({"name": names[8:]}).to_csv(root / "test-names.csv", index=False)
    folder = root / "features" / "f-UTT"
    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        np.save(folder / f"{name}.npy", np.full(3, i, np.float32))


def test_mer2024_transcripts_and_audio_files_by_name(tmp_path: Path):
    names = [f"sample_{i:02d}" for i in range(10)]
    root = tmp_path / "mer"
    _mer2024(root, names)
    pd.DataFrame({"FileName": [f"{n}.mp4" for n in names[:9]], "english": [f"hello {i}" for i in range(9)],
                  "chinese": [f"你好 {i}" for i in range(9)]}).to_csv(root / "transcription.csv", index=False)
    audio = root / "audio"
    audio.mkdir()
    for name in names[:6]:
        (audio / f"{name}.wav").write_bytes(b"RIFF")
    (audio / f"{names[0]}.mp3").write_bytes(b"ID3")  # .wav is preferred
    (audio / f"{names[6]}.flac").write_bytes(b"fLaC")
    (audio / "notes.txt").write_text("not audio")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"task: mer2024-semi\ndata:\n  layout: mer2024\n  root: {root}\n  test_file: test-names.csv\n"
                   "  text_file: transcription.csv\n  audio_dir: audio\n  features: {audio: [f-UTT]}\n")
    ds = load_dataset(data_settings(load_config(cfg)))
    row = {n: i for i, n in enumerate(ds.names)}
    assert ds.raw["text"][row["sample_03"]] == "hello 3" and ds.raw["text"][row["sample_09"]] is None
    assert ds.raw["audio"][row["sample_00"]] == str((audio / "sample_00.wav").resolve())
    assert ds.raw["audio"][row["sample_06"]].endswith("sample_06.flac") and ds.raw["audio"][row["sample_07"]] is None
    chinese = load_dataset(data_settings(load_config(cfg, ["data.text_column=chinese"])))
    assert chinese.raw["text"][row["sample_03"]] == "你好 3"
    for overrides, message in [
        (["data.text_column=french"], r"transcription.csv: no text column 'french' \(data.text_column\)"),
        (["data.text_file=nope.csv"], r"data.text_file: .*nope.csv not found"),
        (["data.text_file=null", "data.text_column=english"], r"data.text_column: no list of the mer2024 layout"),
        (["data.audio_dir=missing"], r"data.audio_dir: .*missing is not a folder"),
    ]:
        with pytest.raises(DataError, match=message):
            load_dataset(data_settings(load_config(cfg, overrides)))


def test_real_emodb_sentences_and_wavs():
    emodb = shared("emodb")
    overrides = ["data.text_file=[label-train.csv, test-names.csv]", "data.audio_dir=wav"]
    ds = load_dataset(data_settings(load_config(REPO / "configs" / "emodb.yaml", overrides)))
    labels = pd.concat([pd.read_csv(emodb / "label-train.csv"), pd.read_csv(emodb / "test-names.csv")])
    sentence = dict(zip(labels["name"], labels["sentence"], strict=True))
    assert [ds.raw["text"][i] for i in range(len(ds.names))] == [sentence[n] for n in ds.names]
    assert all(ds.raw["audio"][i] == str((emodb / "wav" / f"{n}.wav").resolve()) for i, n in enumerate(ds.names))


def test_the_data_layer_imports_no_config_and_the_config_no_data_layer():
    import mer_ensemble

    root = Path(mer_ensemble.__file__).parent
    rules = [(sorted((root / "data").glob("*.py")), ("mer_ensemble.config", "mer_ensemble.experiment",
                                                      "mer_ensemble.portfolio", "mer_ensemble.training")),
             ([root / "config.py", root / "config_sections.py", root / "portfolio.py"], ("mer_ensemble.data",))]
    for paths, forbidden in rules:
        for path in paths:
            imports = [line.split()[1] for line in path.read_text().splitlines()
                       if line.strip().startswith(("from mer_ensemble", "import mer_ensemble"))]
            bad = [name for name in imports if name.startswith(forbidden)]
            assert not bad, f"{path.name} imports {bad}"
