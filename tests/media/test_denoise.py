"""``mer-ensemble denoise``: spectral gating on real noisy speech, and the checkpoint contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mer_ensemble.cli import app
from tests.conftest import SHARED_DATA

sf = pytest.importorskip("soundfile")
pytest.importorskip("noisereduce")
WAV = SHARED_DATA / "emodb" / "wav"
runner = CliRunner()


def _denoise(*args: object):
    return runner.invoke(app, ["denoise", *map(str, args), "--no-progress"])


@pytest.fixture
def noisy(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Speech (EmoDB when present, else a gated chirp for the format checks) plus white noise at 5 dB
    SNR; returns the clean signals."""
    folder = tmp_path / "noisy"
    folder.mkdir()
    rng = np.random.default_rng(0)
    clean = {}
    sources = sorted(WAV.glob("*.wav"))[:3] if WAV.is_dir() else []
    for i in range(3):
        if sources:
            wave, rate = sf.read(str(sources[i]), dtype="float64")
        else:
            rate = 16000
            t = np.arange(rate * 2) / rate
            wave = 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) * (np.sin(2 * np.pi * 3 * t) > 0)
        noise = rng.normal(size=len(wave))
        noise *= np.sqrt(np.mean(wave**2) / np.mean(noise**2) / 10 ** 0.5)
        name = f"utt{i}"
        sf.write(folder / f"{name}.wav", np.clip(wave + noise, -1, 1), rate, subtype="PCM_16")
        clean[name] = wave
    return folder, clean


def _snr(clean: np.ndarray, test: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(clean**2) / np.sum((test - clean) ** 2)))


def test_spectral_gating_keeps_the_format_and_resumes(noisy, tmp_path: Path):
    folder, clean = noisy
    out = tmp_path / "clean"
    result = _denoise("-i", folder, "-o", out)
    assert result.exit_code == 0, result.output
    for name in clean:
        before, after = sf.info(str(folder / f"{name}.wav")), sf.info(str(out / f"{name}.wav"))
        assert (after.samplerate, after.frames, after.channels, after.subtype) == (
            before.samplerate, before.frames, before.channels, before.subtype)
    again = _denoise("-i", folder, "-o", out)
    assert again.exit_code == 0 and "0 denoised, 3 skipped" in again.output
    other = _denoise("-i", folder, "-o", out, "--strength", 0.5)
    assert other.exit_code == 1 and "another method" in other.output


@pytest.mark.skipif(not WAV.is_dir(), reason="EmoDB wavs not found: gating is judged on real speech")
def test_spectral_gating_raises_the_snr_of_real_speech(noisy, tmp_path: Path):
    # synthetic tones are not speech: non-stationary gating removes their harmonics along with the noise
    folder, clean = noisy
    out = tmp_path / "clean"
    assert _denoise("-i", folder, "-o", out).exit_code == 0
    for name, wave in clean.items():
        noisy_wave, _ = sf.read(str(folder / f"{name}.wav"))
        denoised, _ = sf.read(str(out / f"{name}.wav"))
        assert _snr(wave, denoised) > _snr(wave, noisy_wave) + 0.5, name  # white noise at 5 dB is reduced
        quiet = np.abs(wave) < 1e-3 * np.abs(wave).max()  # pauses: what is left there is noise
        assert np.mean(denoised[quiet] ** 2) < 0.25 * np.mean(noisy_wave[quiet] ** 2), name


@pytest.mark.parametrize("output, exporter", [("waveform", "jit"), ("sources", "export")])
def test_checkpoint_contract(noisy, tmp_path: Path, output: str, exporter: str):
    from mer_ensemble.media.testing import save_tiny_enhancer

    folder, _ = noisy
    ckpt = save_tiny_enhancer(tmp_path / "enhancer", output=output, exporter=exporter, gain=0.5, chunk_seconds=0.7)
    sf.write(folder / "stereo.wav", np.stack([np.linspace(-0.5, 0.5, 22050), np.zeros(22050)], axis=1), 22050,
             subtype="FLOAT")
    out = tmp_path / "out"
    result = _denoise("-i", folder, "-o", out, "--model", ckpt)
    assert result.exit_code == 0, result.output
    from mer_ensemble.extract.audio import resample

    for path in folder.glob("*.wav"):
        wave, rate = sf.read(str(path), dtype="float64")
        got, got_rate = sf.read(str(out / path.name), dtype="float64")
        assert got_rate == rate and got.shape == wave.shape
        mono = wave.mean(axis=1) if wave.ndim == 2 else wave
        mono_out = got[:, 0] if got.ndim == 2 else got
        # half the input as the model hears it (resampled to 16 kHz and back), cross-faded chunks included
        heard = resample(resample(mono.astype(np.float32), rate, 16000), 16000, rate)[: len(mono)]
        inner = slice(rate // 10, -rate // 10)
        np.testing.assert_allclose(mono_out[inner], 0.5 * heard[inner], atol=2e-3)
    settings = json.loads((out / "denoise.json").read_text())["settings"]
    assert settings["method"] == "model" and settings["model"] == str(ckpt.resolve())


def test_bad_checkpoints_and_files_are_one_line(noisy, tmp_path: Path):
    from mer_ensemble.media.testing import save_tiny_enhancer

    folder, _ = noisy
    (folder / "broken.wav").write_bytes(b"RIFF not really")
    result = _denoise("-i", folder, "-o", tmp_path / "a")
    assert result.exit_code == 2 and "broken" in (tmp_path / "a" / "errors.csv").read_text()
    assert not (tmp_path / "a" / "broken.wav").exists()
    (folder / "broken.wav").unlink()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    result = _denoise("-i", folder, "-o", tmp_path / "b", "--model", empty)
    assert result.exit_code == 1 and "no enhancer.json (a transformers checkpoint is for extract" in result.output
    ckpt = save_tiny_enhancer(tmp_path / "ck")
    (ckpt / "model.pt2").write_bytes(b"garbage")
    result = _denoise("-i", folder, "-o", tmp_path / "c", "--model", ckpt)
    assert result.exit_code == 1 and "not a torch.export (.pt2) or TorchScript" in result.output
    spec = json.loads((ckpt / "enhancer.json").read_text())
    (ckpt / "enhancer.json").write_text(json.dumps({**spec, "output": "spectrogram"}))
    result = _denoise("-i", folder, "-o", tmp_path / "d", "--model", ckpt)
    assert result.exit_code == 1 and "output 'spectrogram'" in result.output
    result = _denoise("-i", folder, "-o", folder / "inside")
    assert result.exit_code == 1 and "never overwrites its inputs" in result.output
    result = _denoise("-i", folder, "-o", tmp_path / "e", "--method", "wiener")
    assert result.exit_code == 1 and "--method 'wiener'" in result.output
