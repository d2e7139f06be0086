"""Competition facts a new user meets: feature_root relative to data.root, pool rows without a
feature file, a header-less transcription.csv, MER2024 submissions zipped as submission.csv."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pandas as pd
import yaml
from typer.testing import CliRunner

from mer_ensemble.cli import app
from tests.cli.test_real_layouts import meiju_config, mer_config, write_meiju_track1, write_mer2024

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _edit(config: Path, **data: object) -> Path:
    cfg = yaml.safe_load(config.read_text())
    cfg["data"].update(data)
    config.write_text(yaml.safe_dump(cfg))
    return config


def test_feature_root_is_relative_to_data_root_and_named_resolved(tmp_path: Path):
    root = write_meiju_track1(tmp_path / "English")
    elsewhere = tmp_path / "configs"  # the config lives far from the data: paths follow data.root
    elsewhere.mkdir()
    config = _edit(meiju_config(elsewhere, root), feature_root=["Annotation/features", "NoAnnotation/features"])
    result = invoke("check", "-c", config, "--workdir", tmp_path / "wd")
    assert result.exit_code == 0, result.output
    _edit(config, feature_root=["Annotation/feats"])
    result = invoke("check", "-c", config, "--workdir", tmp_path / "wd")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert f"data.feature_root {root / 'Annotation' / 'feats'} does not exist" in result.output
    assert "relative paths are resolved from data.root" in result.output


def test_pool_rows_without_features_are_dropped_with_a_count(tmp_path: Path):
    root = write_meiju_track1(tmp_path / "English")
    config = meiju_config(tmp_path, root)
    for name in ("Track1_NoAnnotation_00003", "Track1_NoAnnotation_00007"):
        (root / "NoAnnotation" / "features" / "wav2vec" / f"{name}.npy").unlink()
    (root / "NoAnnotation" / "features" / "roberta" / "Track1_NoAnnotation_00003.npy").unlink()
    result = invoke("check", "-c", config, "--workdir", tmp_path / "wd")
    assert result.exit_code == 0, result.output
    assert "rows: train 42, dev 6, unlabeled 10, test 10" in result.output
    assert "pool: 2 of 12 unlabelled rows dropped, without a feature file (wav2vec: 2, roberta: 1)" in result.output
    (root / "Annotation" / "features" / "wav2vec" / "Track1_Testing_00004.npy").unlink()
    result = invoke("check", "-c", config, "--workdir", tmp_path / "wd")
    assert result.exit_code == 1 and "Track1_Testing_00004" in result.output  # test rows stay an error


def test_headerless_transcription_csv_is_the_pool(tmp_path: Path):
    root = write_meiju_track1(tmp_path / "English")
    config = meiju_config(tmp_path, root)
    pool = root / "NoAnnotation" / "transcription.csv"
    table = pd.read_csv(pool)
    pool.write_text("".join(f"{n},{s}\n" for n, s in zip(table["name"], table["sentence"], strict=True)))
    result = invoke("check", "-c", config, "--workdir", tmp_path / "wd")
    assert result.exit_code == 0, result.output
    assert "unlabeled 12" in result.output


def test_mer2024_submission_zipped_as_submission_csv(tmp_path: Path):
    root = write_mer2024(tmp_path / "mer")
    config = mer_config(tmp_path, root)
    wd = tmp_path / "wd"
    assert invoke("train-all", "-c", config, "--workdir", wd, "--models", "lin_egemaps").exit_code == 0
    out = tmp_path / "mer-blend.csv"
    result = invoke("blend", "-c", config, "--workdir", wd, "--out", out, "--zip")
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out.with_suffix(".zip")) as archive:
        assert archive.namelist() == ["submission.csv"]
        assert archive.read("submission.csv") == out.read_bytes()
    result = invoke("validate-submission", out.with_suffix(".zip"), "-c", config, "--workdir", wd)
    assert result.exit_code == 0, result.output
    plain = tmp_path / "plain.csv"
    assert invoke("blend", "-c", config, "--workdir", wd, "--out", plain).exit_code == 0
    assert not plain.with_suffix(".zip").exists()
    shutil.rmtree(wd)
