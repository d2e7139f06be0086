"""Submission writers, validators and scoring for every format."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer_ensemble.errors import DataError, SubmissionError
from mer_ensemble.metrics import joint_score, weighted_f1
from mer_ensemble.submission import (
    expected_header,
    parse_submission,
    read_truth,
    score_submission,
    sidecar_path,
    validate_submission,
    write_submission,
    zip_path,
)
from mer_ensemble.tasks import MEIJU_EMOTIONS, MEIJU_INTENTS, MER2024_CLASSES, resolve_task

MER = resolve_task("mer2024-semi")
MEIJU = resolve_task("meiju2025-track1")
GENERIC = resolve_task(
    "generic", targets=["emotion", "sentiment"], classes={"emotion": ["anger", "joy"], "sentiment": ["neg", "pos"]}
)
NAMES = [f"u{i}" for i in range(1, 6)]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _mer_file(tmp_path: Path, body: str, header: str = "name,discrete") -> Path:
    return _write(tmp_path / "sub.csv", f"{header}\n{body}")


GOOD_MER_BODY = "u1,happy\nu2,sad\nu3,neutral\nu4,worried\nu5,surprise\n"


# --- writing ------------------------------------------------------------------------------------


def test_write_mer2024_csv_and_sidecar(tmp_path: Path) -> None:
    labels = {"discrete": np.array([2, 3, 0, 4, 5])}
    path = write_submission(labels, NAMES, MER, tmp_path / "out" / "mer.csv", sidecar={"blend": "greedy"})
    assert path == tmp_path / "out" / "mer.csv"
    assert path.read_text() == "name,discrete\n" + GOOD_MER_BODY
    meta = json.loads(sidecar_path(path).read_text())
    assert sidecar_path(path).name == "mer.json"
    assert meta["blend"] == "greedy" and meta["rows"] == 5 and meta["header"] == ["name", "discrete"]
    assert meta["zip"] is None and not zip_path(path).exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["mer.csv", "mer.json"]  # no temporary files left
    validate_submission(path, MER, NAMES)


def test_write_meiju_csv_zip_and_sidecar(tmp_path: Path) -> None:
    labels = {"emotion": np.array([0, 6, 4, 1, 2]), "intent": np.array([7, 0, 1, 5, 6])}
    path = write_submission(labels, NAMES, MEIJU, tmp_path / "track1-en.csv", sidecar={"score": np.float64(0.5)})
    text = path.read_text()
    assert text.splitlines()[0] == "filename,emo_pred,int_pred"
    assert text.splitlines()[1] == "u1,happy,neutral"
    with zipfile.ZipFile(zip_path(path)) as archive:
        assert archive.namelist() == ["submission.csv"]
        assert archive.read("submission.csv").decode() == text
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["zip"] == "track1-en.zip" and meta["score"] == 0.5
    frame = validate_submission(path, MEIJU, NAMES)
    assert list(frame.columns) == expected_header(MEIJU)


def test_write_into_a_folder_uses_the_task_file_name(tmp_path: Path) -> None:
    labels = {"emotion": np.zeros(5, int), "intent": np.zeros(5, int)}
    path = write_submission(labels, NAMES, MEIJU, tmp_path)
    assert path == tmp_path / "submission.csv"
    assert (tmp_path / "submission.zip").exists() and (tmp_path / "submission.json").exists()


def test_write_generic_header(tmp_path: Path) -> None:
    labels = {"emotion": np.array([0, 1, 1, 0, 1]), "sentiment": np.array([1, 1, 0, 0, 1])}
    path = write_submission(labels, NAMES, GENERIC, tmp_path / "g.csv")
    assert path.read_text().splitlines()[:2] == ["name,emotion,sentiment", "u1,anger,pos"]


@pytest.mark.parametrize(
    ("labels", "names", "message"),
    [
        (
            {"discrete": np.array([0, 1, 2, 3, 4])},
            ["u1", "u2", "u1", "u4", "u5"],
            r"1 duplicate name\(s\), e\.g\. 'u1'",
        ),
        ({"discrete": np.array([0, 1, 2, 3, 6])}, NAMES, r"row 4 \('u5'\) holds class index 6; expected 0\.\.5"),
        ({"discrete": np.array([0, 1, 2])}, NAMES, r"has shape \(3,\); expected \(5,\)"),
        (
            {"emotion": np.zeros(5, int)},
            NAMES,
            r"targets \['emotion'\]; task mer2024-semi needs exactly \['discrete'\]",
        ),
        ({"discrete": np.array(["happy"] * 5)}, NAMES, "must hold class indices"),
    ],
)
def test_write_refuses_bad_input_and_writes_nothing(tmp_path: Path, labels, names, message: str) -> None:
    target = tmp_path / "sub.csv"
    with pytest.raises(SubmissionError, match=message):
        write_submission(labels, names, MER, target)
    assert list(tmp_path.iterdir()) == []


def test_write_needs_a_csv_path(tmp_path: Path) -> None:
    with pytest.raises(SubmissionError, match=r"sub\.json: a submission path must end in \.csv"):
        write_submission({"discrete": np.zeros(5, int)}, NAMES, MER, tmp_path / "sub.json")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    path = write_submission({"discrete": np.array([2, 3, 0, 4, 5])}, NAMES, MER, tmp_path / "sub.csv")
    before = path.read_bytes(), sidecar_path(path).read_bytes()
    with pytest.raises(SubmissionError, match="not JSON serialisable"):
        write_submission({"discrete": np.zeros(5, int)}, NAMES, MER, path, sidecar={"bad": object()})
    assert (path.read_bytes(), sidecar_path(path).read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub.csv", "sub.json"]


# --- validating broken files --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "body", "message"),
    [
        ("name,discrete", "", "has a header but no rows"),
        (
            "name,label",
            GOOD_MER_BODY,
            r"header is 'name,label'; expected 'name,discrete' \(missing column\(s\) "
            r"discrete; unexpected column\(s\) label\)",
        ),
        ("discrete", "happy\n", r"missing column\(s\) name"),
        ("discrete,name", "happy,u1\n", "wrong order"),
        ("name,discrete", "u1,happy\nu2,sad\nu3,neutral\n", r"2 of 5 test names missing, e\.g\. 'u4', 'u5'"),
        ("name,discrete", GOOD_MER_BODY + "zzz,sad\n", r"1 name\(s\) not in the test set, e\.g\. 'zzz'"),
        (
            "name,discrete",
            "u1,happy\nu2,sad\nu1,sad\nu3,neutral\nu4,worried\nu5,surprise\n",
            r"1 duplicate name\(s\), e\.g\. 'u1' on lines 2, 4",
        ),
        (
            "name,discrete",
            "u1,happy\nu2,Happy\n",
            r"line 3 \(name 'u2'\): discrete value 'Happy' is not a class of discrete; allowed: neutral, angry, happy",
        ),
        ("name,discrete", "u1,happy\nu2,\n", r"line 3 \(name 'u2'\): discrete value '' is not a class"),
        ("name,discrete", "u1,happy\nu2,sad,extra\n", "line 3 has 3 fields; the header has 2"),
        ("name,discrete", "u1,happy\n,sad\n", "line 3: empty name"),
    ],
)
def test_broken_mer2024_files(tmp_path: Path, header: str, body: str, message: str) -> None:
    path = _mer_file(tmp_path, body, header)
    with pytest.raises(SubmissionError, match=message) as info:
        validate_submission(path, MER, NAMES)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and "\n" not in text


def test_empty_missing_and_bom_files(tmp_path: Path) -> None:
    with pytest.raises(SubmissionError, match="sub.csv: the file is empty"):
        validate_submission(_write(tmp_path / "sub.csv", ""), MER, NAMES)
    with pytest.raises(SubmissionError, match="submission file not found"):
        validate_submission(tmp_path / "nope.csv", MER, NAMES)
    with pytest.raises(SubmissionError, match="byte-order mark"):
        validate_submission(_write(tmp_path / "bom.csv", "\ufeffname,discrete\n" + GOOD_MER_BODY), MER, NAMES)


def test_meiju_labels_per_column_and_extension_hint(tmp_path: Path) -> None:
    path = _write(tmp_path / "submission.csv", "filename,emo_pred,int_pred\nu1,happy,happy\n")
    with pytest.raises(SubmissionError, match=r"int_pred value 'happy' is not a class of intent; allowed: questioning"):
        validate_submission(path, MEIJU, ["u1"])
    path = _write(tmp_path / "submission.csv", "filename,emo_pred,int_pred\nu1.mp4,happy,neutral\n")
    with pytest.raises(SubmissionError, match="names carry a file extension"):
        validate_submission(path, MEIJU, ["u1"])


def test_validate_a_frame_and_blank_lines(tmp_path: Path) -> None:
    frame = pd.DataFrame({"name": NAMES, "discrete": ["happy"] * 4 + [None]})
    with pytest.raises(SubmissionError, match=r"submission frame: line 6 \(name 'u5'\): discrete value ''"):
        validate_submission(frame, MER, NAMES)
    path = _mer_file(tmp_path, GOOD_MER_BODY.replace("\n", "\n\n", 1))  # a blank line is skipped
    assert len(parse_submission(path, MER)) == 5


# --- truth and scoring --------------------------------------------------------------------------


def test_round_trip_perfect_mer2024(tmp_path: Path) -> None:
    y = np.array([2, 3, 0, 4, 5])
    path = write_submission({"discrete": y}, NAMES, MER, tmp_path / "sub.csv")
    truth = pd.DataFrame({"name": NAMES, "discrete": [MER2024_CLASSES[i] for i in y]})
    truth.to_csv(tmp_path / "truth.csv", index=False)
    validate_submission(path, MER, NAMES)
    assert score_submission(path, tmp_path / "truth.csv", MER) == {"discrete": 1.0, "combined": 1.0, "rows": 5}


def test_round_trip_meiju_official_truth_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    names = [f"Track1_Testing_{i:05d}" for i in range(1, 41)]
    emo, intent = rng.integers(0, 7, 40), rng.integers(0, 8, 40)
    # official CSV: FileName with the media extension, capitalised label names, an extra text column
    truth = pd.DataFrame(
        {
            "FileName": [f"{n}.mp4" for n in names],
            "sentence": "…",
            "emotion": [MEIJU_EMOTIONS[i].capitalize() for i in emo],
            "intent": [MEIJU_INTENTS[i] for i in intent],
        }
    )
    truth.to_csv(tmp_path / "truth.csv", index=False)
    perfect = write_submission({"emotion": emo, "intent": intent}, names, MEIJU, tmp_path / "perfect.csv")
    assert score_submission(perfect, tmp_path / "truth.csv", MEIJU) == {
        "emotion": 1.0,
        "intent": 1.0,
        "combined": 1.0,
        "rows": 40,
    }
    noisy_emo = emo.copy()
    noisy_emo[:10] = (emo[:10] + 1) % 7
    noisy = write_submission({"emotion": noisy_emo, "intent": intent}, names, MEIJU, tmp_path / "noisy.csv")
    scores = score_submission(noisy, tmp_path / "truth.csv", MEIJU)
    assert scores["emotion"] == pytest.approx(weighted_f1(emo, noisy_emo))
    assert scores["combined"] == pytest.approx(joint_score(scores["emotion"], 1.0))


def test_score_restricted_to_the_test_split(tmp_path: Path) -> None:
    labels = {"emotion": np.array([0, 1, 1, 0, 1]), "sentiment": np.array([1, 1, 0, 0, 1])}
    path = write_submission(labels, NAMES, GENERIC, tmp_path / "g.csv")
    truth = pd.DataFrame(
        {
            "name": NAMES + ["p1", "p2"],
            "split": ["test"] * 5 + ["unlabeled"] * 2,
            "emotion": ["anger", "joy", "joy", "anger", "joy", "joy", "joy"],
            "sentiment": ["pos", "pos", "neg", "neg", "", "neg", "neg"],  # u5 sentiment unknown: ignored
        }
    )
    truth.to_csv(tmp_path / "truth.csv", index=False)
    scores = score_submission(path, tmp_path / "truth.csv", GENERIC)
    assert scores == {"emotion": 1.0, "sentiment": 1.0, "combined": 1.0, "rows": 5}
    with pytest.raises(SubmissionError, match=r"2 of the 7 names in .*truth.csv are missing, e\.g\. 'p1', 'p2'"):
        score_submission(path, tmp_path / "truth.csv", GENERIC, split=None)


def test_read_truth_columns_indices_and_errors(tmp_path: Path) -> None:
    _write(tmp_path / "t.csv", "filename,emo_pred,int_pred\na,0,7\nb,sad,-1\n")
    labels, names = read_truth(tmp_path / "t.csv", MEIJU)
    assert names == ["a", "b"]
    np.testing.assert_array_equal(labels["emotion"], [0, 2])
    np.testing.assert_array_equal(labels["intent"], [7, -1])
    _write(tmp_path / "bad.csv", "name,discrete\na,joyful\n")
    with pytest.raises(DataError, match=r"bad.csv: line 2: discrete value 'joyful' is not a class; allowed: neutral"):
        read_truth(tmp_path / "bad.csv", MER)
    _write(tmp_path / "noname.csv", "id,discrete\na,sad\n")
    with pytest.raises(DataError, match="no name column"):
        read_truth(tmp_path / "noname.csv", MER)
    _write(tmp_path / "notarget.csv", "name,label\na,sad\n")
    with pytest.raises(DataError, match="no column for target 'discrete'"):
        read_truth(tmp_path / "notarget.csv", MER)


def test_validate_accepts_the_zip_it_writes_and_checks_its_content(tmp_path: Path) -> None:
    labels = {"emotion": np.array([0, 6, 4, 1, 2]), "intent": np.array([7, 0, 1, 5, 6])}
    path = write_submission(labels, NAMES, MEIJU, tmp_path)
    frame = validate_submission(zip_path(path), MEIJU, NAMES)
    assert frame["filename"].tolist() == list(NAMES)
    with pytest.raises(SubmissionError, match=r"submission.zip:submission.csv: 1 of 6 test names missing"):
        validate_submission(zip_path(path), MEIJU, [*NAMES, "u9"])
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as archive:
        archive.writestr("a.csv", "x")
        archive.writestr("b.csv", "y")
    with pytest.raises(SubmissionError, match=r"two.zip: a submission zip must hold exactly submission.csv at its "
                                              r"top level; it holds 2"):
        validate_submission(two, MEIJU, NAMES)
