"""Tests for the synthetic demo data generator (``mer_ensemble.data.demo``) and ``demo-data``."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mer_ensemble.cli import app
from mer_ensemble.data import demo
from mer_ensemble.data.demo import FEATURE_FOLDERS, FRAME_RANGES, make_demo, parse_dims
from mer_ensemble.errors import DataError
from mer_ensemble.tasks import MEIJU_EMOTIONS, MEIJU_INTENTS, MER2024_CLASSES

MER_DIMS = "audio=64,text=48,video=32"
MEIJU_DIMS = {"audio": 24, "text": 16, "video": 12}
MER_CLASSES = list(MER2024_CLASSES)  # the classes are pinned in tests/test_tasks.py


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def mer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mer") / "demo"
    return make_demo(out, layout="mer2024", n_train=900, n_pool=80, n_test=40, dims=MER_DIMS, seed=0)


@pytest.fixture(scope="module")
def meiju_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("meiju") / "demo"
    return make_demo(out, layout="meiju", n_train=200, n_pool=50, n_test=30, dims=MEIJU_DIMS, seed=0)


# --------------------------------------------------------------------------- MER2024 layout


def test_mer2024_files_and_headers(mer_dir: Path) -> None:
    top = sorted(p.name for p in mer_dir.iterdir())
    assert top == sorted(
        [
            "README.txt",
            "demo-meta.json",
            "label-disdim.csv",
            "test-names.csv",
            "pool-names.csv",
            "candidate-names.csv",
            "truth-test.csv",
            "truth-pool.csv",
            "features",
        ]
    )
    headers = {
        "label-disdim.csv": ["name", "discrete", "valence"],
        "test-names.csv": ["name"],
        "pool-names.csv": ["name"],
        "candidate-names.csv": ["name"],
        "truth-test.csv": ["name", "discrete"],
        "truth-pool.csv": ["name", "discrete"],
    }
    for fname, header in headers.items():
        assert _rows(mer_dir / fname)[0] == header, fname
    assert sorted(p.name for p in (mer_dir / "features").iterdir()) == sorted(FEATURE_FOLDERS["mer2024"].values())
    assert not list(mer_dir.parent.glob("*.tmp-*"))


def test_mer2024_counts_names_and_features(mer_dir: Path) -> None:
    train = [r["name"] for r in _rows(mer_dir / "label-disdim.csv")[1]]
    test = [r["name"] for r in _rows(mer_dir / "test-names.csv")[1]]
    pool = [r["name"] for r in _rows(mer_dir / "pool-names.csv")[1]]
    candidates = [r["name"] for r in _rows(mer_dir / "candidate-names.csv")[1]]
    assert (len(train), len(pool), len(test)) == (900, 80, 40)
    everything = train + pool + test
    assert len(set(everything)) == len(everything)
    assert all(n.startswith("sample_") and len(n) == len("sample_00000001") for n in everything)
    assert set(test) <= set(candidates) and len(set(candidates) & set(pool)) == 40
    assert [r["name"] for r in _rows(mer_dir / "truth-test.csv")[1]] == test
    assert [r["name"] for r in _rows(mer_dir / "truth-pool.csv")[1]] == pool
    assert min(test) < max(train) and min(train) < max(test), "split must not be readable from the name order"
    labels = _rows(mer_dir / "label-disdim.csv")[1]
    assert {r["discrete"] for r in labels} == set(MER_CLASSES)
    assert all(-5.0 <= float(r["valence"]) <= 5.0 for r in labels)
    dims = parse_dims(MER_DIMS)
    for modality, folder in FEATURE_FOLDERS["mer2024"].items():
        files = list((mer_dir / "features" / folder).iterdir())
        assert len(files) == len(everything)
        x = np.load(files[0])
        assert x.dtype == np.float32 and x.shape == (dims[modality],)
    meta = json.loads((mer_dir / "demo-meta.json").read_text())
    assert meta["layout"] == "mer2024" and meta["seed"] == 0 and meta["dims"] == dims
    assert list(meta["priors"]["discrete"]) == MER_CLASSES
    assert "synthetic" in (mer_dir / "README.txt").read_text().lower()


def test_mer2024_class_imbalance(mer_dir: Path) -> None:
    counts = Counter(r["discrete"] for r in _rows(mer_dir / "label-disdim.csv")[1])
    assert counts.most_common(1)[0][0] == "neutral"
    assert min(counts, key=counts.get) == "surprise"
    assert counts["neutral"] > 3 * counts["surprise"]
    truth = Counter(r["discrete"] for r in _rows(mer_dir / "truth-pool.csv")[1])
    assert truth["neutral"] > truth["surprise"]


def test_mer2024_modality_ranking(mer_dir: Path) -> None:
    """Audio beats text beats video, and audio+text beats audio (logistic regression, 3-fold CV)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = _rows(mer_dir / "label-disdim.csv")[1]
    y = np.array([r["discrete"] for r in labels])
    feats = {
        m: np.stack([np.load(mer_dir / "features" / f / f"{r['name']}.npy") for r in labels])
        for m, f in FEATURE_FOLDERS["mer2024"].items()
    }
    cv = StratifiedKFold(3, shuffle=True, random_state=0)

    def accuracy(*modalities: str) -> float:
        x = np.hstack([feats[m] for m in modalities])
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))
        return float(cross_val_score(model, x, y, cv=cv, scoring="accuracy").mean())

    audio, text, video, audio_text = accuracy("audio"), accuracy("text"), accuracy("video"), accuracy("audio", "text")
    print(f"accuracy audio {audio:.3f} text {text:.3f} video {video:.3f} audio+text {audio_text:.3f}")
    assert audio > text + 0.03, (audio, text)
    assert text > video + 0.03, (text, video)
    assert video > 0.32, video  # weak but above the majority class (0.28)
    assert audio_text > audio + 0.02, (audio_text, audio)


# --------------------------------------------------------------------------- MEIJU layout


def _lines(path: Path) -> list[list[str]]:
    return [line.split(" ") for line in path.read_text(encoding="utf-8").splitlines()]


def test_meiju_files_and_counts(meiju_dir: Path) -> None:
    top = sorted(p.name for p in meiju_dir.iterdir())
    assert top == sorted(
        [
            "README.txt",
            "demo-meta.json",
            "Training_files.txt",
            "Validation_files.txt",
            "Testing_files.txt",
            "NoAnnotation_files.txt",
            "truth.csv",
            "features",
        ]
    )
    train = _lines(meiju_dir / "Training_files.txt")
    valid = _lines(meiju_dir / "Validation_files.txt")
    test = _lines(meiju_dir / "Testing_files.txt")
    pool = _lines(meiju_dir / "NoAnnotation_files.txt")
    assert (len(train), len(valid), len(test), len(pool)) == (200, 30, 30, 50)
    assert train[0][0] == "Track1_Training_00001.mp4" and valid[0][0] == "Track1_Validation_00001.mp4"
    assert test[0] == ["Track1_Testing_00001.mp4"] and pool[-1] == ["Track1_NoAnnotation_00050.mp4"]
    for row in train + valid:
        assert len(row) == 3 and row[1] in MEIJU_EMOTIONS and row[2] in MEIJU_INTENTS
    assert all(len(row) == 1 for row in test + pool)
    header, truth = _rows(meiju_dir / "truth.csv")
    assert header == ["name", "split", "emotion", "intent"]
    assert [r["name"] for r in truth] == [row[0][:-4] for row in test + pool]
    assert Counter(r["split"] for r in truth) == {"test": 30, "unlabeled": 50}
    emotions = Counter(row[1] for row in train)
    assert emotions.most_common(1)[0][0] == "neutral" and emotions["neutral"] > 3 * emotions["fear"]
    assert sorted(p.name for p in (meiju_dir / "features").iterdir()) == sorted(FEATURE_FOLDERS["meiju"].values())


def test_meiju_frame_level_shapes_vary(meiju_dir: Path) -> None:
    names = [row[0][:-4] for row in _lines(meiju_dir / "Training_files.txt")[:40]]
    for modality, folder in FEATURE_FOLDERS["meiju"].items():
        assert len(list((meiju_dir / "features" / folder).iterdir())) == 200 + 30 + 30 + 50
        arrays = [np.load(meiju_dir / "features" / folder / f"{n}.npy") for n in names]
        lengths = {a.shape[0] for a in arrays}
        low, high = FRAME_RANGES[modality]
        assert all(a.ndim == 2 and a.dtype == np.float32 and a.shape[1] == MEIJU_DIMS[modality] for a in arrays)
        assert len(lengths) > 3 and low <= min(lengths) and max(lengths) <= high, (modality, lengths)


def test_meiju_emotion_intent_correlated() -> None:
    table = demo._meiju_intent_given_emotion()
    sad = demo.MEIJU_EMOTIONS.index("sad")
    consoling = demo.MEIJU_INTENTS.index("consoling")
    assert np.allclose(table.sum(axis=1), 1.0)
    assert table[sad, consoling] == table[:, consoling].max() and table[sad, consoling] > 0.2


# --------------------------------------------------------------------------- behaviour


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    kwargs = {"layout": "meiju", "n_train": 40, "n_pool": 10, "n_test": 10, "dims": MEIJU_DIMS}
    first = _tree(make_demo(tmp_path / "a", seed=3, **kwargs))
    second = _tree(make_demo(tmp_path / "b", seed=3, **kwargs))
    other = _tree(make_demo(tmp_path / "c", seed=4, **kwargs))
    assert first == second
    assert first.keys() == other.keys() and first != other
    small = {"n_train": 40, "n_pool": 10, "n_test": 10, "seed": 3}
    mer_a = make_demo(tmp_path / "d", dims="audio=8,text=8,video=8", **small)
    mer_b = make_demo(tmp_path / "e", dims="audio=16,text=8,video=8", **small)
    assert (mer_a / "label-disdim.csv").read_bytes() == (mer_b / "label-disdim.csv").read_bytes()


def test_refuses_non_empty_out_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    small = {"n_train": 30, "n_pool": 5, "n_test": 5, "dims": "audio=8,text=8,video=8"}
    with pytest.raises(DataError, match="not empty"):
        make_demo(out, **small)
    assert (out / "keep.txt").exists()
    make_demo(out, overwrite=True, **small)
    assert not (out / "keep.txt").exists() and (out / "label-disdim.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    empty = tmp_path / "empty"
    empty.mkdir()
    make_demo(empty, **small)
    assert (empty / "demo-meta.json").exists()


def test_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo, "_write_features", boom)
    with pytest.raises(RuntimeError):
        make_demo(tmp_path / "out", n_train=30, n_pool=5, n_test=5, dims="audio=8,text=8,video=8")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("dims", "named"),
    [
        ("audio=abc", "audio=abc"),
        ("speech=64", "speech"),
        ("audio64", "audio64"),
        ("audio=2", "audio=2"),
        ("audio=64,audio=32", "audio"),
    ],
)
def test_bad_dims_name_the_item(dims: str, named: str) -> None:
    with pytest.raises(DataError, match=named):
        parse_dims(dims)


def test_dims_partial_override() -> None:
    assert parse_dims("text=100") == {"audio": 1024, "text": 100, "video": 512}
    assert parse_dims(None) == {"audio": 1024, "text": 768, "video": 512}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"layout": "mer2025"}, "layout"), ({"n_train": 3}, "--n-train"), ({"n_test": 0}, "--n-test")],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        make_demo(tmp_path / "out", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- CLI


def test_cli_demo_data(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["demo-data", str(out), "--layout", "meiju", "--n-train", "30", "--n-pool", "5", "--n-test", "5"]
    args += ["--dims", "audio=8,text=8,video=8", "--seed", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "meiju" in result.output and (out / "Training_files.txt").exists()
    assert json.loads((out / "demo-meta.json").read_text())["sizes"]["validation"] == 4

    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "not empty" in again.output
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0

    bad = runner.invoke(app, ["demo-data", str(tmp_path / "bad"), "--dims", "audio=x"])
    assert bad.exit_code == 1 and "audio=x" in bad.output
