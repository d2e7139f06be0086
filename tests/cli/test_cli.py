"""The CLI end to end on small demo data, and its error contract."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from mer_ensemble.cli import app
from tests.conftest import REPO

runner = CliRunner()

COMMANDS = [
    "check",
    "models",
    "train-all",
    "leaderboard",
    "blend",
    "pseudo-label",
    "validate-submission",
    "score",
    "demo-data",
    "extract",
    "corrupt",
    "tune",
    "report",
    "prepare",
    "transcribe",
    "denoise",
    "features",
]


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command(command: str):
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_help_imports_no_heavy_library():
    code = (
        "import sys; from mer_ensemble.cli import app; "
        "heavy = [m for m in ('torch', 'xgboost', 'sklearn', 'optuna', 'transformers', 'pandas') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"--help would import {out}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, Path]:
    """Small MER2024-layout demo data and a config with a fast registry."""
    tmp = tmp_path_factory.mktemp("demo")
    data = tmp / "data"
    result = invoke(
        "demo-data", data, "--n-train", 150, "--n-pool", 200, "--n-test", 60, "--dims", "audio=24,text=16,video=8"
    )
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["data"]["root"] = str(data)
    cfg["truth"] = {"test": str(data / "truth-test.csv"), "unlabeled": str(data / "truth-pool.csv")}
    cfg["cv"] = {"folds": 3, "seeds": [0]}
    cfg["models"] = [
        {"name": "linear", "id": "lin_audio", "features": ["audio"]},
        {"name": "linear", "id": "lin_all"},
        {"name": "mlp", "id": "mlp_all", "params": {"epochs": 15, "hidden": 32}},
    ]
    cfg["blend"] = {"params": {"optuna": {"n_trials": 20}}}
    cfg["pseudo"] = {"rounds": 1, "threshold": 0.6}
    path = tmp / "demo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, tmp / "wd"


def test_end_to_end_demo(demo, tmp_path: Path):
    config, wd = demo
    result = invoke("check", "-c", config, "--workdir", wd)
    assert result.exit_code == 0, result.output
    assert "target discrete [weighted_f1]: neutral" in result.output and "D=24" in result.output

    result = invoke("train-all", "-c", config, "--workdir", wd)
    assert result.exit_code == 0, result.output
    assert "lin_all" in result.output and "± " in result.output
    assert sorted(p.stem for p in (wd / "store").glob("*.json")) == ["lin_all", "lin_audio", "mlp_all"]

    result = invoke("leaderboard", "--workdir", wd)
    assert result.exit_code == 0 and "mlp_all" in result.output

    out = tmp_path / "sub.csv"
    result = invoke("blend", "-c", config, "--workdir", wd, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(out)
    for label in ("best single run", "equal-weight mean", "greedy selection", "Optuna weights", "stacking"):
        assert label in result.output
    assert "nested" in result.output
    sidecar = json.loads(out.with_suffix(".json").read_text())
    methods = ("best", "mean", "vote", "greedy", "subset_greedy", "topk", "optuna", "stacking", "ties")
    assert sidecar["targets"]["discrete"]["method"] in methods
    assert "nested" in sidecar["estimate"]

    result = invoke("validate-submission", out, "-c", config, "--workdir", wd)
    assert result.exit_code == 0, result.output
    data_root = Path(yaml.safe_load(config.read_text())["data"]["root"])
    result = invoke("score", out, "--truth", data_root / "truth-test.csv", "-c", config)
    assert result.exit_code == 0, result.output
    score = float(result.output.split("discrete:")[1].split()[0])
    assert score > 1 / 6 + 0.1  # clearly above chance on the demo data

    result = invoke("pseudo-label", "-c", config, "--workdir", wd, "--rounds", "1")
    assert result.exit_code == 0, result.output
    assert "round 1: CV" in result.output and "precision" in result.output
    assert (wd / "pseudo" / "rounds.png").is_file()


def test_blend_refuses_mismatched_runs(demo, tmp_path: Path):
    config, wd = demo
    if not (wd / "store" / "lin_all.json").is_file():
        assert invoke("train-all", "-c", config, "--workdir", wd).exit_code == 0
    broken = tmp_path / "wd"
    import shutil

    shutil.copytree(wd / "store", broken / "store")
    shutil.copytree(wd / "cache", broken / "cache")
    shutil.copy(wd / "folds.csv", broken / "folds.csv")
    shutil.copy(wd / "folds.json", broken / "folds.json")
    meta = json.loads((broken / "store" / "lin_all.json").read_text())
    meta["folds_hash"] = "0000"
    (broken / "store" / "lin_all.json").write_text(json.dumps(meta))
    result = invoke("blend", "-c", config, "--workdir", broken)
    assert result.exit_code == 1
    assert "different folds" in result.output and "lin_all" in result.output
    assert not list(Path("submissions").glob("*nomatch*"))

    meta["folds_hash"] = json.loads((wd / "store" / "lin_audio.json").read_text())["folds_hash"]
    (broken / "store" / "lin_all.json").write_text(json.dumps(meta))
    npz = dict(np.load(broken / "store" / "lin_all.npz"))
    npz["test/discrete"] = npz["test/discrete"][:0]
    np.savez(broken / "store" / "lin_all.npz", **npz)
    result = invoke("blend", "-c", config, "--workdir", broken)
    assert result.exit_code == 1 and "lin_all has no test predictions" in result.output


def test_one_line_errors(tmp_path: Path, generic_config: Path):
    result = invoke("check", "-c", tmp_path / "missing.yaml")
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "not found" in result.output
    result = invoke("check", "-c", generic_config, "--set", "cv.foldz=3")
    assert result.exit_code == 1 and "unknown key 'cv.foldz'" in result.output
    result = invoke("leaderboard", "--workdir", tmp_path / "nothing")
    assert result.exit_code == 1 and "no stored runs" in result.output


def test_meiju_end_to_end_with_frame_features(tmp_path: Path):
    """MEIJU layout: frame-level features, emotion + intent, submission.csv + zip that scores."""
    data = tmp_path / "data"
    result = invoke("demo-data", data, "--layout", "meiju", "--n-train", 120, "--n-pool", 60, "--n-test", 40,
                    "--dims", "audio=16,text=12,video=8")
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load((REPO / "configs" / "demo-meiju.yaml").read_text())
    cfg["data"]["root"] = str(data)
    cfg["truth"] = {"test": str(data / "truth.csv")}
    cfg["cv"] = {"folds": 3}
    cfg["train"] = {"jobs": 1}
    cfg["models"] = [{"name": "linear", "id": "lin"},
                     {"name": "attention_fusion", "id": "attn", "params": {"epochs": 3}}]
    cfg["blend"] = {"params": {"optuna": {"n_trials": 10}}, "methods": ["best", "mean", "optuna"]}
    config = tmp_path / "meiju.yaml"
    config.write_text(yaml.safe_dump(cfg))
    wd = tmp_path / "wd"
    result = invoke("train-all", "-c", config, "--workdir", wd)
    assert result.exit_code == 0, result.output
    assert "emotion weighted_f1" in result.output and "intent weighted_f1" in result.output
    out = tmp_path / "sub" / "submission.csv"
    result = invoke("blend", "-c", config, "--workdir", wd, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[0] == "filename,emo_pred,int_pred"
    import zipfile

    with zipfile.ZipFile(out.with_suffix(".zip")) as zf:
        assert zf.namelist() == ["submission.csv"]
    result = invoke("score", out, "--truth", data / "truth.csv", "-c", config)
    assert result.exit_code == 0, result.output
    assert "emotion:" in result.output and "intent:" in result.output and "combined:" in result.output
