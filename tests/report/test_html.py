"""The HTML report: sections, embedded images, no external links, missing inputs, and a real browser render."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mer_ensemble.cli import app
from mer_ensemble.io import atomic_save_npz, atomic_write_json
from mer_ensemble.report.html import SECTION_IDS, build_report, confusion_counts, per_class_scores, write_report
from mer_ensemble.store import RunRecord, save_run
from tests.conftest import REPO

os.environ["MER_NO_PROGRESS"] = "1"

CLASSES = ["anger", "joy", "neutral"]
N, K = 60, 3


def _record(key: str, y: np.ndarray, fold: np.ndarray, rng: np.random.Generator, skill: float) -> RunRecord:
    logits = rng.normal(size=(N, 3)) + skill * np.eye(3)[y]
    oof = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    manifest = {
        "key": key, "run_id": key.split("@")[0], "round": int("@r" in key), "model": "linear",
        "features": ["fa-UTT"], "modalities": ["audio"], "targets": ["emotion"], "classes": {"emotion": CLASSES},
        "task": "generic", "cv": {"emotion": {"metric": "weighted_f1", "mean": 0.5 + skill / 10, "sd": 0.05,
                                             "folds": [0.5] * K, "oof": 0.5}},
        "combined": {"mean": 0.5 + skill / 10, "sd": 0.05, "oof": 0.5}, "fit_seconds": 1.5,
    }
    return RunRecord(manifest=manifest, oof={"emotion": oof.astype(np.float32)},
                     test={"emotion": np.full((10, 3), 1 / 3, np.float32)}, pool={"emotion": np.zeros((5, 3))},
                     pool_by_fold={"emotion": np.zeros((K, 5, 3))}, rows=np.arange(N), fold=fold,
                     test_rows=np.arange(N, N + 10), pool_rows=np.arange(N + 10, N + 15))


def _workdir(path: Path, *, blend: bool = True, pseudo: bool = True) -> Path:
    """A workdir as train-all, blend and pseudo-label leave it (three runs, one target)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, N)
    fold = np.arange(N) % K
    for key, skill in (("lin", 2.0), ("mlp", 1.0), ("lin@r1", 2.2)):
        save_run(path, _record(key, y, fold, rng, skill))
    if blend:
        nested = np.eye(3)[np.where(rng.random(N) < 0.7, y, (y + 1) % 3)] * 0.8 + 0.2 / 3
        atomic_save_npz(path / "blend" / "latest.npz", **{"nested/emotion": nested, "y/emotion": y,
                                                          "test/emotion": np.full((10, 3), 1 / 3)})
        scores = {m: {"in_sample": 0.7, "nested": 0.6 + i / 100, "nested_folds": [0.6, 0.62, 0.58]}
                  for i, m in enumerate(["best", "mean", "greedy"])}
        atomic_write_json(path / "blend" / "latest.json", {
            "config": "exp.yaml", "task": "generic", "created": "20260101-120000",
            "estimate": "nested CV: blender fitted on K-1 folds' OOF rows, scored on the held-out fold",
            "combined_nested": 0.62, "combined_in_sample": 0.7, "submission": "submissions/x.csv",
            "targets": {"emotion": {"method": "greedy", "runs": ["lin", "lin@r1", "mlp"], "scores": scores,
                                    "chosen": {"blender": "greedy", "weights": [0.5, 0.3, 0.2],
                                               "runs": ["lin", "lin@r1", "mlp"]}}},
        })
    if pseudo:
        history = [{"round": r, "added": {"emotion": {"joy": 3.0 * r}}, "agree_rate": {"emotion": 0.4},
                    "precision": {"emotion": {"joy": 0.9, "all": 0.9}} if r else {}, "cv_score": 0.6 + r / 50,
                    "cv_per_target": {"emotion": 0.6 + r / 50}, "runs": ["lin", "mlp"], "seconds": 3.0,
                    **({"gain": 0.02, "gain_se": 0.004, "compared_with": r - 1, "kept": r == 1} if r else {})}
                   for r in range(3)]
        atomic_write_json(path / "pseudo" / "history.json", history)
    return path


def _sections(text: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)">', text)


def test_report_structure_and_self_containment(tmp_path: Path) -> None:
    path = write_report(_workdir(tmp_path / "wd"))
    assert path == tmp_path / "wd" / "report.html"
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert _sections(text) == list(SECTION_IDS)
    sources = re.findall(r'src="([^"]*)"', text)
    # weights, confusion, per-class F1, correlation heatmap, pseudo rounds
    assert len(sources) == 5
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"https?:|<link|<script|@import|url\(", text)
    assert all(href.startswith("#") for href in re.findall(r'href="([^"]*)"', text))
    assert "nested-CV estimate" in text and "greedy" in text and "Pearson correlation" in text
    assert "No blend yet" not in text and "No pseudo-label rounds" not in text
    assert "+0.0200 ± 0.0040 over round 0: kept" in text and "over round 1: not kept" in text


def test_missing_inputs_are_explained_not_fatal(tmp_path: Path) -> None:
    text = build_report(_workdir(tmp_path / "wd", blend=False, pseudo=False))
    assert _sections(text) == list(SECTION_IDS)
    assert text.count("No blend yet") == 1 and text.count("No nested blend predictions") == 2
    assert "No pseudo-label rounds in this workdir" in text
    # without labels the diversity section falls back to argmax agreement
    assert "share of rows on which two runs predict the same class" in text
    empty = tmp_path / "empty"
    empty.mkdir()
    text = build_report(empty)
    assert "No stored runs yet" in text and "Fewer than two stored runs" in text


def test_confusion_and_per_class_scores() -> None:
    from sklearn.metrics import confusion_matrix, f1_score

    rng = np.random.default_rng(1)
    y, pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    y[:5] = -1  # unknown labels are left out
    counts = confusion_counts(y, pred, 4)
    known = y >= 0
    np.testing.assert_array_equal(counts, confusion_matrix(y[known], pred[known], labels=range(4)))
    np.testing.assert_allclose(per_class_scores(counts)["f1"], f1_score(y[known], pred[known], average=None))


def test_cli_report(tmp_path: Path) -> None:
    wd = _workdir(tmp_path / "wd")
    result = CliRunner().invoke(app, ["report", "--workdir", str(wd), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and (tmp_path / "r.html").is_file()
    result = CliRunner().invoke(app, ["report"])
    assert result.exit_code == 1 and "error: report: pass --workdir DIR" in result.output
    result = CliRunner().invoke(app, ["report", "--workdir", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "not found" in result.output


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from screenshot_report import find_chromium
    finally:
        sys.path.pop(0)
    if find_chromium() is None:
        pytest.skip("no Chromium on PATH (apt-get install -y chromium)")
    from PIL import Image

    report = write_report(_workdir(tmp_path / "wd"))
    shot = tmp_path / "shot.png"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "screenshot_report.py"), str(report), str(shot),
                           "--window-size", "1400,3000"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with Image.open(shot) as image:
        assert image.size == (1400, 3000)
        pixels = np.asarray(image.convert("L"))
    # the page drew something: the header band is dark, the body has images and text
    assert pixels[:40].mean() < 120 and pixels.std() > 20
