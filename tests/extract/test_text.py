"""Text extraction (extract/text.py): the real all-MiniLM-L6-v2 against MELD's reference features, bad
items, frame level and a changed setup refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from mer_ensemble.errors import ExtractError
from mer_ensemble.extract import extract_features
from tests.extract.cases import MELD, MELD_REFERENCE, cli, cosine, errors_of, minilm, needs_meld, no_temp_files


@needs_meld
def test_minilm_matches_meld_reference(tmp_path: Path) -> None:
    """Defaults come from the sentence-transformers config (last layer, mean, normalised)."""
    model = minilm()
    import pandas as pd

    labels = pd.read_csv(MELD / "labels.csv", dtype=str, keep_default_na=False)
    subset = pd.concat([labels.head(32), labels[labels.text.str.contains("’")].head(16)]).drop_duplicates("name")
    subset.to_csv(tmp_path / "meld.csv", index=False)
    out = tmp_path / "features" / "minilm-UTT"

    # The reference features were computed with ’ written as ': --text-replace reproduces that.
    result = cli("-m", "text", "--model", model, "-i", tmp_path / "meld.csv", "-o", out, "--text-replace", "’='")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["settings"]["layers"] == [-1] and manifest["settings"]["normalize"] is True
    assert manifest["defaults_from"].startswith("sentence-transformers") and manifest["dim"] == 384
    assert manifest["complete"] is True and manifest["counts"]["written"] == len(subset)
    cosines = []
    for name in subset.name:
        vector = np.load(out / f"{name}.npy")
        assert vector.dtype == np.float32 and vector.shape == (384,)
        assert abs(np.linalg.norm(vector) - 1.0) < 1e-4
        cosines.append(cosine(vector, np.load(MELD_REFERENCE / f"{name}.npy")))
    assert min(cosines) >= 0.99
    assert no_temp_files(out) and not (out / "errors.csv").exists()

    # Resume: nothing is recomputed.
    stamp = (out / f"{subset.name.iloc[0]}.npy").stat().st_mtime_ns
    again = cli("-m", "text", "--model", model, "-i", tmp_path / "meld.csv", "-o", out, "--text-replace", "’='")
    assert again.exit_code == 0 and f"0 written, {len(subset)} skipped" in again.stdout
    assert (out / f"{subset.name.iloc[0]}.npy").stat().st_mtime_ns == stamp

    # Explicit flags on the raw text: still close on average (’ vs ' moves a few items slightly).
    raw = tmp_path / "features" / "minilm-raw-UTT"
    flags = ("--layers", "last", "--pooling", "mean", "--normalize", "--no-progress")
    assert cli("-m", "text", "--model", model, "-i", tmp_path / "meld.csv", "-o", raw, *flags).exit_code == 0
    raw_cos = [cosine(np.load(raw / f"{n}.npy"), np.load(MELD_REFERENCE / f"{n}.npy")) for n in subset.name]
    assert np.mean(raw_cos) >= 0.99


def test_text_bad_items_frame_level_and_mismatch(tmp_path: Path) -> None:
    model = minilm()
    rows = [("a", "I am so happy today!"), ("b", "   "), ("a", "duplicate"), ("c", "What?")]
    with open(tmp_path / "t.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("name", "text"), *rows])
    fra = tmp_path / "minilm-FRA"
    result = cli("-m", "text", "--model", model, "-i", tmp_path / "t.csv", "-o", fra)
    assert result.exit_code == 2
    assert "2 of 4 items failed" in result.stderr
    errors = errors_of(fra)
    assert errors["b"] == "empty text" and errors["a"].startswith("duplicate name")
    frames = np.load(fra / "a.npy")
    assert frames.ndim == 2 and frames.shape[1] == 384 and frames.shape[0] >= 7  # [CLS] i am so happy today ! [SEP]

    utt = tmp_path / "minilm-UTT"
    assert cli("-m", "text", "--model", model, "-i", tmp_path / "t.csv", "-o", utt).exit_code == 2
    pooled = frames.mean(axis=0)
    np.testing.assert_allclose(np.load(utt / "a.npy"), pooled / np.linalg.norm(pooled), atol=1e-5)

    with pytest.raises(ExtractError, match="--normalize applies to -UTT"):
        extract_features("text", model, tmp_path / "t.csv", tmp_path / "x-FRA", normalize=True)

    # Another layer choice into the same folder is refused, in one line.
    clash = cli("-m", "text", "--model", model, "-i", tmp_path / "t.csv", "-o", utt, "--layers", "-2,-1")
    assert clash.exit_code == 1 and "--overwrite" in clash.stderr and len(clash.stderr.strip().splitlines()) == 1
