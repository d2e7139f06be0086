"""The extraction run (extract/_run.py): an option the model cannot honour stops it before any work, and
extracted features feed train-all unchanged."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mer_ensemble.cli import app
from mer_ensemble.extract import extract_features
from tests.extract.cases import EMODB_WAV, SHARED, cli, needs_emodb, runner


def test_layers_out_of_range_is_one_error(tmp_path: Path, tiny: Callable[..., Path]) -> None:
    import soundfile as sf

    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "x.wav", np.zeros(16000, dtype=np.float32), 16000)
    result = cli("-m", "audio", "--model", tiny("hubert", layers=2), "-i", tmp_path / "in", "-o", tmp_path / "o-UTT")
    assert result.exit_code == 1
    assert "layer -4 is out of range" in result.stderr and "--layers" in result.stderr



@needs_emodb
def test_extracted_features_train_with_train_all(tmp_path: Path, tiny: Callable[..., Path]) -> None:
    """Real EmoDB wavs → tiny HuBERT `-UTT` features in the MER2024 layout → `train-all` unchanged."""
    import pandas as pd
    import yaml

    labels = pd.read_csv(SHARED / "emodb" / "label-train.csv")
    train = labels.groupby("discrete").head(4)  # 28 labelled rows, every class
    test = pd.read_csv(SHARED / "emodb" / "test-names.csv").head(6)
    root = tmp_path / "emodb-mini"
    wav = tmp_path / "wav"
    wav.mkdir()
    for name in list(train["name"]) + list(test["name"]):
        os.symlink(EMODB_WAV / f"{name}.wav", wav / f"{name}.wav")
    root.mkdir()
    train[["name", "discrete", "speaker"]].to_csv(root / "label-train.csv", index=False)
    test[["name"]].to_csv(root / "test-names.csv", index=False)
    report = extract_features("audio", tiny("hubert"), wav, root / "features" / "tiny-hubert-UTT")
    assert not report.failures
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "task": "generic",
        "data": {"layout": "mer2024", "root": str(root), "label_file": "label-train.csv",
                 "test_file": "test-names.csv", "targets": ["discrete"],
                 "features": {"audio": ["tiny-hubert-UTT"]}},
        "cv": {"folds": 2},
        "models": [{"name": "linear", "id": "lin"}],
    }))
    result = runner.invoke(app, ["train-all", "-c", str(config), "--workdir", str(tmp_path / "wd")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "wd" / "store" / "lin.json").read_text())
    assert manifest["features"] == ["tiny-hubert-UTT"] and len(manifest["cv"]["discrete"]["folds"]) == 2
