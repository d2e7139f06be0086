"""Layouts and loading a dataset from them, bad input named."""

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer_ensemble.config import load_config
from mer_ensemble.data import load_dataset
from mer_ensemble.errors import DataError
from mer_ensemble.experiment import data_settings
from tests.conftest import shared, write_config, write_generic


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


def test_mer2024_layout(tmp_path: Path):
    root = tmp_path / "mer"
    rng = np.random.default_rng(0)
    classes = ["neutral", "angry", "happy", "sad", "worried", "surprise"]
    train = [f"s{i}" for i in range(30)]
    test = [f"t{i}" for i in range(6)]
    pool = [f"p{i}" for i in range(8)] + test[:2]  # test names hide in the pool
    root.mkdir()
    pd.DataFrame({"name": train, "discrete": [classes[i % 6] for i in range(30)], "valence": 0.0}).to_csv(
        root / "label-disdim.csv", index=False)
    pd.DataFrame({"name": test}).to_csv(root / "test-names.csv", index=False)
    pd.DataFrame({"name": pool}).to_csv(root / "pool-names.csv", index=False)
    pd.DataFrame({"name": test + pool[:3]}).to_csv(root / "candidate-names.csv", index=False)
    folder = root / "features" / "hubert-FRA"
    folder.mkdir(parents=True)
    for name in train + test + pool[:8]:
        np.save(folder / f"{name}.npy", rng.normal(size=(rng.integers(1, 4), 3)).astype(np.float32))
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(f"task: mer2024-semi\ndata:\n  layout: mer2024\n  root: {root}\n"
                        "  candidate_file: candidate-names.csv\n  features: {audio: [hubert-FRA]}\n")
    ds = load_dataset(data_settings(load_config(cfg_path)), None)
    assert len(ds.test_rows) == 6 and len(ds.pool_rows) == 8
    assert ds.task.target("discrete").classes[0] == "neutral"
    assert ds.features["hubert-FRA"].level == "frame"
    assert int(ds.candidates.sum()) == 9


def test_meiju_layout(tmp_path: Path):
    root = tmp_path / "meiju"
    root.mkdir()
    (root / "Training_files.txt").write_text("".join(
        f"Track1_Training_{i:05d}.mp4 {['happy', 'sad', 'neutral'][i % 3]} {['questioning', 'consoling'][i % 2]}\n"
        for i in range(12)))
    (root / "Validation_files.txt").write_text("Track1_Validation_00001.mp4 fear agreeing\n")
    (root / "Testing_files.txt").write_text("Track1_Testing_00001.mp4\nTrack1_Testing_00002.mp4\n")
    (root / "NoAnnotation_files.txt").write_text("Track1_NoAnnotation_00001.mp4\n")
    folder = root / "features" / "roberta-FRA"
    folder.mkdir(parents=True)
    names = [f"Track1_Training_{i:05d}" for i in range(12)] + ["Track1_Validation_00001", "Track1_Testing_00001",
                                                                "Track1_Testing_00002", "Track1_NoAnnotation_00001"]
    for n in names:
        np.save(folder / f"{n}.npy", np.ones((2, 4), np.float32))
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(f"task: meiju2025-track1\ndata:\n  layout: meiju\n  root: {root}\n"
                        "  features: {text: [roberta-FRA]}\n")
    ds = load_dataset(data_settings(load_config(cfg_path)), None)
    assert ds.task.target_names == ["emotion", "intent"]
    assert (ds.split == "dev").sum() == 1 and len(ds.labelled_rows) == 13
    assert ds.labels["intent"][0] == ds.task.target("intent").classes.index("questioning")
    (root / "Training_files.txt").write_text("Track1_Training_00000.mp4 happy\n")
    with pytest.raises(DataError, match="line 1: expected"):
        load_dataset(data_settings(load_config(cfg_path)), None)


def test_shared_emodb_and_meld():
    from tests.conftest import REPO

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


def _meiju_lists(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Training_files.txt").write_text("".join(
        f"Track1_Training_{i:05d}.mp4 {['happy', 'sad', 'neutral'][i % 3]} {['questioning', 'consoling'][i % 2]}\n"
        for i in range(6)), encoding="utf-8")
    (root / "Testing_files.txt").write_text("Track1_Testing_00001.mp4\n")


def test_a_byte_order_mark_is_stripped_from_every_text_list(tmp_path: Path):
    from mer_ensemble.data.layouts import read_layout, read_mer2024

    root = tmp_path / "meiju"
    _meiju_lists(root)
    for name in ("Training_files.txt", "Testing_files.txt"):
        (root / name).write_bytes(b"\xef\xbb\xbf" + (root / name).read_bytes())
    (root / "NoAnnotation_files.txt").write_bytes(b"\xef\xbb\xbfTrack1_NoAnnotation_00001.mp4\n")
    table = read_layout("meiju", root, targets=["emotion", "intent"], pool_file="NoAnnotation_files.txt")
    assert table["name"].tolist()[0] == "Track1_Training_00000"
    assert set(table["name"]) >= {"Track1_Testing_00001", "Track1_NoAnnotation_00001"}
    mer = tmp_path / "mer"
    mer.mkdir()
    (mer / "label-disdim.csv").write_bytes(b"\xef\xbb\xbfname,discrete\ns1,happy\n")
    (mer / "test-names.txt").write_bytes(b"\xef\xbb\xbft1\n")
    table = read_mer2024(mer, targets=["discrete"], test_file="test-names.txt")
    assert table["name"].tolist() == ["s1", "t1"]


@pytest.mark.parametrize("bad", ["../../x", "/abs/x", "a/b", "..", "sub\\x", "tab\tx"])
@pytest.mark.parametrize("where", ["label", "test", "pool", "meiju", "generic"])
def test_names_that_could_escape_a_feature_folder_are_refused(tmp_path: Path, bad: str, where: str):
    from mer_ensemble.data.layouts import read_layout

    root = tmp_path / "d"
    root.mkdir()
    if where == "meiju":
        _meiju_lists(root)
        if "\t" in bad:  # whitespace splits a txt line, so a control character in a txt list is \x07
            bad = "bell\x07x"
        (root / "Testing_files.txt").write_text(f"Track1_Testing_00001.mp4\n{bad}\n")
        path, line, kwargs, layout = root / "Testing_files.txt", 2, {}, "meiju"
    elif where == "generic":
        pd.DataFrame({"name": ["a", bad, "c"], "split": ["train", "train", "test"], "emotion": ["x", "y", ""]}).to_csv(
            root / "labels.csv", index=False)
        path, line, kwargs, layout = root / "labels.csv", 3, {}, "generic"
    else:
        lists = {"label": pd.DataFrame({"name": ["s1", bad], "discrete": ["happy", "sad"]}),
                 "test": pd.DataFrame({"name": ["t1", bad]}), "pool": pd.DataFrame({"name": ["p1", bad]})}
        good = {"label": pd.DataFrame({"name": ["s1"], "discrete": ["happy"]}), "test": pd.DataFrame({"name": ["t1"]}),
                "pool": pd.DataFrame({"name": ["p1"]})}
        files = {"label": "label-disdim.csv", "test": "test-names.csv", "pool": "pool-names.csv"}
        for kind, file in files.items():
            (lists if kind == where else good)[kind].to_csv(root / file, index=False)
        path, line, kwargs, layout = root / files[where], 3, {}, "mer2024"
    targets = {"meiju": ["emotion", "intent"], "generic": ["emotion"]}.get(layout, ["discrete"])
    with pytest.raises(DataError, match=rf"^{path}, line {line}: name .* a name must be a plain file name") as err:
        read_layout(layout, root, targets=targets, **kwargs)
    assert "\n" not in str(err.value)


def test_meiju_lists_in_any_mix_and_configured_keys(tmp_path: Path):
    from mer_ensemble.data.layouts import read_layout

    root = tmp_path / "meiju"
    (root / "Annotation").mkdir(parents=True)
    (root / "NoAnnotation").mkdir()
    # official transcription CSV with labels (FileName holds <name>.mp4; columns in any case)
    pd.DataFrame({"FileName": ["Track1_Training_00001.mp4", "Track1_Training_00002.mp4"], "sentence": ["a", "b"],
                  "Emotion": ["happy", "sad"], "Intent": ["agreeing", "neutral"]}).to_csv(
        root / "Annotation" / "Training_transcription.csv", index=False)
    (root / "Annotation" / "Validation_files.txt").write_text("Track1_Validation_00001.mp4 fear agreeing\n")
    pd.DataFrame({"FileName": ["Track1_Testing_00001.mp4"]}).to_csv(
        root / "Annotation" / "English_Testing_files.csv", index=False)
    pd.DataFrame({"name": ["Track1_NoAnnotation_00001.mp4", "Track1_Testing_00001.mp4"], "sentence": ["x", "y"]}
                 ).to_csv(root / "NoAnnotation" / "transcription.csv", index=False)
    table = read_layout("meiju", root, targets=["emotion", "intent"])  # every list found by its official name
    assert table.set_index("name")["split"].to_dict() == {
        "Track1_Training_00001": "train", "Track1_Training_00002": "train", "Track1_Validation_00001": "dev",
        "Track1_Testing_00001": "test", "Track1_NoAnnotation_00001": "unlabeled"}
    assert table["emotion"].tolist()[:3] == ["happy", "sad", "fear"]
    # configured keys win over the names found: a txt label list, the CSV test list, a txt pool
    (root / "my_train.txt").write_text("clip_1.mp4 happy questioning\nclip_2.avi anger wishing\n")
    (root / "pool.txt").write_text("Track1_NoAnnotation_00009.mp4\n")
    table = read_layout("meiju", root, targets=["emotion", "intent"], label_file="my_train.txt",
                        test_file="Annotation/English_Testing_files.csv", pool_file="pool.txt")
    assert table.loc[table["split"] == "train", "name"].tolist() == ["clip_1", "clip_2"]
    assert table.loc[table["split"] == "unlabeled", "name"].tolist() == ["Track1_NoAnnotation_00009"]
    with pytest.raises(DataError, match=r"^data.test_file: .*nowhere.csv not found; MEIJU ships Testing_files.txt"):
        read_layout("meiju", root, targets=["emotion", "intent"], test_file="nowhere.csv")
    (root / "Annotation" / "English_Testing_files.csv").unlink()
    with pytest.raises(DataError, match=r"^data.test_file: not set and none of .*English_Testing_files.csv"):
        read_layout("meiju", root, targets=["emotion", "intent"])
    pd.DataFrame({"FileName": ["a.mp4"], "sentence": ["s"]}).to_csv(root / "nolabels.csv", index=False)
    with pytest.raises(DataError, match=r"nolabels.csv: missing column\(s\) \['emotion', 'intent'\] for the train"):
        read_layout("meiju", root, targets=["emotion", "intent"], label_file="nolabels.csv", test_file="pool.txt")


def test_mer2024_candidate_list_is_a_test_list(tmp_path: Path):
    from mer_ensemble.data.layouts import read_mer2024

    root = tmp_path / "mer"
    root.mkdir()
    pd.DataFrame({"name": ["s1", "s2"], "discrete": ["happy", "sad"]}).to_csv(root / "label-disdim.csv", index=False)
    pd.DataFrame({"name": ["t1", "p1"], "discrete": ["neutral", "neutral"]}).to_csv(root / "cand.csv", index=False)
    (root / "pool.txt").write_text("t1.mp4\np1.mp4\np2.mp4\n")
    table = read_mer2024(root, targets=["discrete"], test_file="cand.csv", pool_file="pool.txt")
    assert table.set_index("name")["split"].to_dict() == {"s1": "train", "s2": "train", "t1": "test", "p1": "test",
                                                           "p2": "unlabeled"}
    assert table.loc[table["split"] == "test", "discrete"].isna().all()  # placeholder labels are not read
    with pytest.raises(DataError, match=r"^data.test_file: not set .* candidate list `name,discrete`"):
        read_mer2024(root, targets=["discrete"])


def test_text_extraction_names_lose_one_media_extension(tmp_path: Path):
    from mer_ensemble.extract.text import read_texts

    path = tmp_path / "Training_transcription.csv"
    path.write_bytes(b"\xef\xbb\xbfFileName,sentence\nTrack1_Training_00001.mp4,hi\nclip.v2.wav,yo\n")
    items = read_texts(path, name_column="FileName", text_column="sentence")
    assert [i.name for i in items] == ["Track1_Training_00001", "clip.v2"]
    path.write_text("FileName,sentence\n../x.mp4,hi\n")
    with pytest.raises(DataError, match=r"line 2: name '../x'"):
        read_texts(path, name_column="FileName", text_column="sentence")
