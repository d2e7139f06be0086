"""``extract --model opensmile:<set>``: openSMILE functionals and low-level descriptors of real speech."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mer_ensemble.cli import app
from tests.conftest import SHARED_DATA

opensmile = pytest.importorskip("opensmile")
sf = pytest.importorskip("soundfile")
WAV = SHARED_DATA / "emodb" / "wav"
pytestmark = pytest.mark.skipif(not WAV.is_dir(), reason=f"EmoDB wavs not found under {SHARED_DATA}")
runner = CliRunner()


def _extract(*args: object):
    return runner.invoke(app, ["extract", "-m", "audio", *map(str, args), "--no-progress"])


@pytest.fixture
def wavs(tmp_path: Path) -> Path:
    folder = tmp_path / "wav"
    folder.mkdir()
    for path in sorted(WAV.glob("*.wav"))[:4]:
        (folder / path.name).symlink_to(path)
    return folder


def test_egemaps_functionals_and_llds_match_opensmile(wavs: Path, tmp_path: Path):
    from mer_ensemble.extract.audio import read_audio

    utt, fra = tmp_path / "eGeMAPS_UTT", tmp_path / "eGeMAPS_FRA"
    assert _extract("--model", "opensmile:eGeMAPSv02", "-i", wavs, "-o", utt).exit_code == 0
    result = _extract("--model", "opensmile:egemapsv02", "-i", wavs, "-o", fra)
    assert result.exit_code == 0, result.output
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    for path in sorted(wavs.glob("*.wav")):
        vector = np.load(utt / f"{path.stem}.npy")
        assert vector.shape == (88,) and vector.dtype == np.float32
        expected = smile.process_signal(read_audio(path, 16000), 16000).to_numpy()[0]
        np.testing.assert_allclose(vector, expected, rtol=1e-5, atol=1e-5)
        frames = np.load(fra / f"{path.stem}.npy")
        seconds = sf.info(str(path)).duration
        assert frames.shape[1] == 25 and abs(frames.shape[0] - seconds / 0.01) < 10  # one row per 10 ms
    manifest = json.loads((utt / "manifest.json").read_text())
    assert manifest["checkpoint"]["feature_set"] == "eGeMAPSv02" and manifest["dim"] == 88
    assert len(manifest["extractor"]["feature_names"]) == 88 and "torch" not in manifest["versions"]
    again = _extract("--model", "opensmile:eGeMAPSv02", "-i", wavs, "-o", utt)
    assert again.exit_code == 0 and "0 written, 4 skipped" in again.output
    other = _extract("--model", "opensmile:ComParE_2016", "-i", wavs, "-o", utt)
    assert other.exit_code == 1 and "another checkpoint" in other.output


def test_compare_functionals_and_a_too_short_file(wavs: Path, tmp_path: Path):
    sf.write(wavs / "short.wav", np.zeros(40, np.float32), 16000)
    out = tmp_path / "ComParE_2016_UTT"
    result = _extract("--model", "opensmile:ComParE_2016", "-i", wavs, "-o", out)
    assert result.exit_code == 2, result.output
    assert np.load(next(out.glob("0*.npy"))).shape == (6373,)
    assert not (out / "short.npy").exists() and "short" in (out / "errors.csv").read_text()
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())


@pytest.mark.parametrize("args, message", [
    (["--model", "opensmile:eGeMAPSv03"], "unknown openSMILE feature set 'eGeMAPSv03'"),
    (["--model", "opensmile:eGeMAPSv02", "--layers", "last"], "--layers applies to neural checkpoints"),
])
def test_bad_opensmile_options_are_one_line(wavs: Path, tmp_path: Path, args: list[str], message: str):
    result = _extract(*args, "-i", wavs, "-o", tmp_path / "x_UTT")
    assert result.exit_code == 1 and message in result.output
    assert not (tmp_path / "x_UTT").exists()


def test_opensmile_is_audio_only(wavs: Path, tmp_path: Path):
    result = runner.invoke(app, ["extract", "-m", "text", "--model", "opensmile:eGeMAPSv02", "-i", wavs, "-o",
                                 tmp_path / "x_UTT"])
    assert result.exit_code == 1 and "use --modality audio, not text" in result.output
