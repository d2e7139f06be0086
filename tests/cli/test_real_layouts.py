"""The competitions' files as the organisers ship them, through check, train-all, blend and
validate-submission: MEIJU@2025 (official CSVs + text lists, two feature roots, the
NoAnnotation pool) and MER2024 (label-disdim, the candidate list as the test list, an
unlabelled pool, frame-level edge cases)."""

import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mer_ensemble.cli import app

runner = CliRunner()

EMOTIONS = ["happy", "surprise", "sad", "disgust", "anger", "fear", "neutral"]
INTENTS = ["questioning", "agreeing", "acknowledging", "encouraging", "consoling", "suggesting", "wishing", "neutral"]
MER_CLASSES = ["neutral", "angry", "happy", "sad", "worried", "surprise"]


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _save(folder: Path, name: str, array: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{name}.npy", array.astype(np.float32))


def _signal(rng: np.random.Generator, label: int, dim: int) -> np.ndarray:
    centre = np.zeros(dim)
    centre[label % dim] = 2.0
    return centre + rng.normal(size=dim)


def write_meiju_track1(root: Path, n_train: int = 42, n_test: int = 10, n_pool: int = 12) -> Path:
    """Track 1 English as shipped: ``Annotation/`` with the training transcription CSV
    (FileName = <name>.mp4, sentence, emotion, intent), ``Validation_files.txt``, the test
    list ``English_Testing_files.csv`` and ``features/``; ``NoAnnotation/`` with
    ``transcription.csv`` (name,sentence) and its own ``features/``."""
    rng = np.random.default_rng(0)
    ann, noann = root / "Annotation", root / "NoAnnotation"
    ann.mkdir(parents=True)
    noann.mkdir()
    train = [f"Track1_Training_{i:05d}" for i in range(n_train)]
    emo = [EMOTIONS[i % 3] for i in range(n_train)]
    intent = [INTENTS[i % 2] for i in range(n_train)]
    pd.DataFrame({"FileName": [f"{n}.mp4" for n in train], "sentence": "hello there", "emotion": emo,
                  "intent": intent}).to_csv(ann / "Training_transcription.csv", index=False)
    dev = [f"Track1_Validation_{i:05d}" for i in range(6)]
    (ann / "Validation_files.txt").write_text(
        "".join(f"{n}.mp4 {EMOTIONS[i % 3]} {INTENTS[i % 2]}\n" for i, n in enumerate(dev)))
    test = [f"Track1_Testing_{i:05d}" for i in range(n_test)]
    pd.DataFrame({"FileName": [f"{n}.mp4" for n in test]}).to_csv(ann / "English_Testing_files.csv", index=False)
    pool = [f"Track1_NoAnnotation_{i:05d}" for i in range(n_pool)]
    pd.DataFrame({"name": [f"{n}.mp4" for n in pool], "sentence": "hmm"}).to_csv(
        noann / "transcription.csv", index=False)
    labels = {**dict(zip(train, emo, strict=True)), **{n: EMOTIONS[i % 3] for i, n in enumerate(dev)}}
    for name in train + dev + test:
        label = EMOTIONS.index(labels.get(name, "happy"))
        _save(ann / "features" / "wav2vec", name, np.stack([_signal(rng, label, 6) for _ in range(3)]))
        _save(ann / "features" / "roberta", name, rng.normal(size=(2, 4)))
    for name in pool:
        _save(noann / "features" / "wav2vec", name, rng.normal(size=(3, 6)))
        _save(noann / "features" / "roberta", name, rng.normal(size=(2, 4)))
    return root


def meiju_config(tmp: Path, root: Path) -> Path:
    cfg = {
        "task": "meiju2025-track1",
        "data": {
            "layout": "meiju",
            "root": str(root),
            "label_file": "Annotation/Training_transcription.csv",
            "pool_file": "NoAnnotation/transcription.csv",
            "feature_root": [str(root / "Annotation" / "features"), str(root / "NoAnnotation" / "features")],
            "features": {"audio": ["wav2vec"], "text": ["roberta"]},
        },
        "cv": {"folds": 2},
        "train": {"jobs": 1},
        "models": [{"name": "linear", "id": "lin"}, {"name": "linear", "id": "lin_audio", "features": ["audio"]}],
        "blend": {"methods": ["best", "mean", "vote", "stacking"]},
    }
    path = tmp / "meiju.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def write_mer2024(root: Path, n_train: int = 36, n_test: int = 8, n_pool: int = 14) -> Path:
    """MER2024 as shipped: ``label-disdim.csv`` (name,discrete,valence), the candidate list
    ``name,discrete`` (placeholder labels) hiding the test names among pool names, the
    unlabelled pool list; an utterance-level feature, a ``-FRA`` folder where one-frame
    clips are ``(D,)`` files, and a per-frame face folder of ``(1, D)`` files."""
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    train = [f"sample_{i:08d}" for i in range(n_train)]
    labels = [MER_CLASSES[i % 3] for i in range(n_train)]
    pd.DataFrame({"name": train, "discrete": labels, "valence": 0.0}).to_csv(root / "label-disdim.csv", index=False)
    test = [f"sample_{9000 + i:08d}" for i in range(n_test)]
    pool = [f"sample_{5000 + i:08d}" for i in range(n_pool)]
    candidates = test + pool[:4]
    pd.DataFrame({"name": candidates, "discrete": "neutral"}).to_csv(root / "candidates.csv", index=False)
    (root / "unlabelled.txt").write_text("".join(f"{n}.mp4\n" for n in pool + test))
    lookup = dict(zip(train, labels, strict=True))
    for i, name in enumerate(train + test + pool):
        label = MER_CLASSES.index(lookup.get(name, "neutral"))
        _save(root / "features" / "eGeMAPS_UTT", name, _signal(rng, label, 5))
        frames = 1 if i % 4 == 0 else 3
        clip = np.stack([_signal(rng, label, 4) for _ in range(frames)])
        _save(root / "features" / "hubert-FRA", name, clip[0] if frames == 1 else clip)  # one frame: (D,)
        for f in range(2):
            _save(root / "features" / "face-FRA" / name, f"{f:03d}", rng.normal(size=(1, 3)))  # (1, D)
    return root


def mer_config(tmp: Path, root: Path) -> Path:
    cfg = {
        "task": "mer2024-noise",
        "data": {
            "layout": "mer2024",
            "root": str(root),
            "label_file": "label-disdim.csv",
            "test_file": "candidates.csv",
            "pool_file": "unlabelled.txt",
            "features": {"audio": ["eGeMAPS_UTT", "hubert-FRA"], "video": ["face-FRA"]},
        },
        "cv": {"folds": 2},
        "train": {"jobs": 1},
        "models": [{"name": "linear", "id": "lin"}, {"name": "linear", "id": "lin_egemaps",
                                                      "features": ["eGeMAPS_UTT"]}],
        "blend": {"methods": ["best", "mean", "vote", "stacking"]},
    }
    path = tmp / "mer.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run_all(config: Path, wd: Path, out: Path) -> str:
    result = invoke("check", "-c", config, "--workdir", wd)
    assert result.exit_code == 0, result.output
    check_text = result.output
    result = invoke("train-all", "-c", config, "--workdir", wd)
    assert result.exit_code == 0, result.output
    result = invoke("blend", "-c", config, "--workdir", wd, "--out", out)
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "stacking" in result.output and "distinct fold id" in result.output
    sidecar = json.loads(out.with_suffix(".json").read_text())
    for target in sidecar["targets"].values():
        assert "distinct fold id" in target["skipped"]["stacking"]
        assert "stacking" not in target["scores"] and {"best", "mean", "vote"} <= set(target["scores"])
    result = invoke("validate-submission", out, "-c", config, "--workdir", wd)
    assert result.exit_code == 0, result.output
    return check_text


def test_meiju_track1_official_files(tmp_path: Path):
    root = write_meiju_track1(tmp_path / "English")
    config = meiju_config(tmp_path, root)
    out = tmp_path / "sub" / "submission.csv"
    check_text = _run_all(config, tmp_path / "wd", out)
    assert "rows: train 42, dev 6, unlabeled 12, test 10" in check_text
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["filename", "emo_pred", "int_pred"]
    assert frame["filename"].tolist() == [f"Track1_Testing_{i:05d}" for i in range(10)]  # no .mp4
    with zipfile.ZipFile(out.with_suffix(".zip")) as archive:
        assert archive.namelist() == ["submission.csv"]
    result = invoke("validate-submission", out.with_suffix(".zip"), "-c", config)
    assert result.exit_code == 0, result.output


def test_meiju_without_pool_says_so_and_one_root_names_the_folder(tmp_path: Path):
    root = write_meiju_track1(tmp_path / "English")
    config = meiju_config(tmp_path, root)
    cfg = yaml.safe_load(config.read_text())
    del cfg["data"]["pool_file"]
    (root / "NoAnnotation" / "transcription.csv").unlink()
    config.write_text(yaml.safe_dump(cfg))
    result = invoke("check", "-c", config, "--workdir", tmp_path / "wd")
    assert result.exit_code == 0, result.output
    assert "no unlabelled pool" in result.output and "data.pool_file" in result.output
    cfg["data"]["feature_root"] = str(root / "Annotation" / "features")
    cfg["data"]["pool_file"] = "NoAnnotation/missing.csv"
    config.write_text(yaml.safe_dump(cfg))
    result = invoke("check", "-c", config, "--workdir", tmp_path / "wd")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "data.pool_file" in result.output and "NoAnnotation/transcription.csv (name,sentence)" in result.output


def test_mer2024_candidate_list_pool_and_frame_edge_cases(tmp_path: Path):
    root = write_mer2024(tmp_path / "mer")
    config = mer_config(tmp_path, root)
    out = tmp_path / "sub.csv"
    check_text = _run_all(config, tmp_path / "wd", out)
    assert "rows: train 36, dev 0, unlabeled 10, test 12" in check_text  # candidates are the test rows
    assert "hubert-FRA (audio): frame level, D=4, frames min 1" in check_text
    assert "face-FRA (video): frame level, D=3, frames min 2" in check_text
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["name", "discrete"] and len(frame) == 12


@pytest.mark.parametrize("key, message", [
    ("test_file", "hidden in the unlabelled videos with a candidate list `name,discrete`"),
    ("label_file", "label-disdim.csv (name,discrete,valence)"),
    ("pool_file", "set data.pool_file to it"),
])
def test_mer2024_missing_list_names_the_key(tmp_path: Path, key: str, message: str):
    root = write_mer2024(tmp_path / "mer", n_train=6, n_test=2, n_pool=2)
    config = mer_config(tmp_path, root)
    cfg = yaml.safe_load(config.read_text())
    cfg["data"][key] = "nowhere.csv"
    config.write_text(yaml.safe_dump(cfg))
    result = invoke("check", "-c", config)
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert f"data.{key}: {root / 'nowhere.csv'} not found" in result.output and message in result.output


def test_user_files_follow_the_umask(tmp_path: Path):
    from mer_ensemble.io import atomic_write_text
    from mer_ensemble.submission import write_submission
    from mer_ensemble.tasks import resolve_task

    old = os.umask(0o027)
    try:
        task = resolve_task("meiju2025-track1")
        out = write_submission({"emotion": np.array([0, 1]), "intent": np.array([2, 3])}, ["a", "b"], task,
                               tmp_path / "s" / "submission.csv", sidecar={"x": 1})
        report = atomic_write_text(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(old)
    for path in (out, out.with_suffix(".json"), out.with_suffix(".zip"), report):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
