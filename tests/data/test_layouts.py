"""The competition layouts (data/layouts.py): each list format read into one table, names checked,
the rows' text where the lists carry it."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer_ensemble.config import load_config
from mer_ensemble.data import load_dataset
from mer_ensemble.errors import DataError
from mer_ensemble.experiment import data_settings


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


def test_meiju_sentences_are_the_rows_text(tmp_path: Path):
    from mer_ensemble.data.layouts import read_layout
    from mer_ensemble.data.raw import RAW_TEXT, text_values

    root = tmp_path / "meiju"
    root.mkdir()
    pd.DataFrame({"FileName": ["t1.mp4", "t2.mp4"], "Sentence": ["I agree.", " "], "emotion": ["happy", "sad"],
                  "intent": ["agreeing", "neutral"]}).to_csv(root / "Training.csv", index=False)
    (root / "Testing_files.txt").write_text("x1.mp4\n")  # a text list carries no sentence
    pd.DataFrame({"name": ["p1"], "sentence": ["Pool words."]}).to_csv(root / "NoAnnotation_transcription.csv",
                                                                       index=False)
    table = read_layout("meiju", root, targets=["emotion", "intent"], pool_file="NoAnnotation_transcription.csv")
    text = dict(zip(table["name"], text_values(table[RAW_TEXT].tolist()), strict=True))
    assert text == {"t1": "I agree.", "t2": None, "x1": None, "p1": "Pool words."}, "a text list carries no text"
    (root / "Training.csv").write_text("FileName,emotion,intent\nt1.mp4,happy,agreeing\n")
    table = read_layout("meiju", root, targets=["emotion", "intent"], pool_file="Testing_files.txt",
                        test_file="Testing_files.txt")
    assert RAW_TEXT not in table.columns, "no list with a sentence column: the data has no text"


def test_generic_text_column(tmp_path: Path):
    from mer_ensemble.data.layouts import read_generic
    from mer_ensemble.data.raw import RAW_TEXT, text_values

    root = tmp_path / "g"
    root.mkdir()
    pd.DataFrame({"name": ["a", "b", "c"], "split": ["train", "train", "test"], "emotion": ["joy", "sad", ""],
                  "text": ["Hi there", "", "Bye"], "utterance": ["u1", "u2", "u3"]}).to_csv(root / "labels.csv",
                                                                                         index=False)
    assert text_values(read_generic(root, targets=["emotion"])[RAW_TEXT].tolist()).tolist() == ["Hi there", None, "Bye"]
    assert read_generic(root, targets=["emotion"], text_column="utterance")[RAW_TEXT].tolist() == ["u1", "u2", "u3"]
    with pytest.raises(DataError, match=r"labels.csv: data.text_column 'transcript' not found; found \['name'"):
        read_generic(root, targets=["emotion"], text_column="transcript")


def test_transcript_csvs_by_name(tmp_path: Path):
    from mer_ensemble.data.layouts import read_text_file

    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    pd.DataFrame({"name": ["s1.mp4", "s2"], "English": ["one", "two"], "Chinese": ["一", "二"]}).to_csv(first,
                                                                                                     index=False)
    pd.DataFrame({"FileName": ["s2.wav", "s3.wav"], "english": ["again", "three"]}).to_csv(second, index=False)
    assert read_text_file([first, second]) == {"s1": "one", "s2": "two", "s3": "three"}, "the first row of a name wins"
    assert read_text_file([first], "chinese") == {"s1": "一", "s2": "二"}
    pd.DataFrame({"name": ["s1"], "words": ["x"]}).to_csv(first, index=False)
    with pytest.raises(DataError, match=r"a.csv: no text column any of \['text', 'sentence', 'english', 'chinese'\]"):
        read_text_file([first])
    with pytest.raises(DataError, match="data.text_file: .*missing.csv not found"):
        read_text_file([tmp_path / "missing.csv"])
