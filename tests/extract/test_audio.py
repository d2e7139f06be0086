"""Audio extraction (extract/audio.py): tiny random HuBERT, wav2vec2 and Whisper checkpoints on real EmoDB wavs."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mer_ensemble.extract import extract_features
from tests.extract.cases import EMODB_WAV, cli, errors_of, needs_emodb, no_temp_files


@needs_emodb
def test_audio_hubert_utt_and_frames(tmp_path: Path, tiny: Callable[..., Path], emodb_subset: Path) -> None:
    ckpt = tiny("hubert")
    utt, fra = tmp_path / "features" / "tiny-hubert-UTT", tmp_path / "features" / "tiny-hubert-FRA"
    for out in (utt, fra):
        result = cli("-m", "audio", "--model", ckpt, "-i", emodb_subset, "-o", out, "--chunk-seconds", 3)
        assert result.exit_code == 2, result.output
        errors = errors_of(out)
        assert set(errors) == {"bad", "empty"}
        assert errors["bad"].startswith("unreadable audio") and errors["empty"] == "empty audio (0 samples)"
        assert no_temp_files(out)
    manifest = json.loads((utt / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["settings"]["layers"] == [-4, -3, -2, -1] and manifest["extractor"]["sample_rate"] == 16000
    assert manifest["counts"] == {"items": 15, "written": 13, "skipped": 0, "failed": 2}
    name = sorted(EMODB_WAV.glob("*.wav"))[0].stem
    frames = np.load(fra / f"{name}.npy")
    assert frames.dtype == np.float32 and frames.shape == (99, 32)  # 2 s at 16 kHz, 20 ms frames
    np.testing.assert_allclose(np.load(utt / f"{name}.npy"), frames.mean(axis=0), atol=1e-5)
    long_frames = np.load(fra / "long.npy")  # 7 s cut into three 2.33 s chunks
    assert long_frames.shape == (3 * 116, 32)


@needs_emodb
def test_audio_matches_direct_forward(tmp_path: Path, tiny: Callable[..., Path]) -> None:
    """The stored vector is the mean over time of the last 4 hidden states summed."""
    import soundfile as sf
    import torch
    from scipy.signal import resample_poly
    from transformers import AutoFeatureExtractor, AutoModel

    ckpt = tiny("hubert")
    wav = sorted(EMODB_WAV.glob("*.wav"))[3]
    (tmp_path / "in").mkdir()
    os.symlink(wav, tmp_path / "in" / wav.name)
    report = extract_features("audio", ckpt, tmp_path / "in", tmp_path / "x-UTT")
    assert report.ok and report.n_written == 1

    samples, rate = sf.read(wav, dtype="float32")
    samples = resample_poly(samples, 320, 441).astype(np.float32) if rate == 22050 else samples
    inputs = AutoFeatureExtractor.from_pretrained(ckpt)(samples, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        hidden = AutoModel.from_pretrained(ckpt)(**inputs, output_hidden_states=True).hidden_states
    expected = torch.stack(hidden[-4:]).sum(0)[0].mean(0).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "x-UTT" / f"{wav.stem}.npy"), expected, atol=1e-5)


@needs_emodb
@pytest.mark.parametrize("kind", ["hubert", "wav2vec2"])
def test_audio_batching_does_not_change_features(tmp_path: Path, tiny: Callable[..., Path], kind: str) -> None:
    """Padded batches (attention mask) and equal-length groups (no mask) give the unbatched result."""
    import soundfile as sf

    folder = tmp_path / "in"
    folder.mkdir()
    for path in sorted(EMODB_WAV.glob("*.wav"))[:4]:
        os.symlink(path, folder / path.name)
    samples, rate = sf.read(sorted(EMODB_WAV.glob("*.wav"))[5], dtype="float32")
    sf.write(folder / "short.wav", samples[: int(1.3 * rate)], rate)
    one = extract_features("audio", tiny(kind), folder, tmp_path / "one-FRA", batch_size=1)
    many = extract_features("audio", tiny(kind), folder, tmp_path / "many-FRA", batch_size=5)
    assert one.ok and many.ok and one.n_written == 5
    for path in (tmp_path / "one-FRA").glob("*.npy"):
        np.testing.assert_allclose(np.load(path), np.load(tmp_path / "many-FRA" / path.name), atol=2e-4)


@needs_emodb
def test_whisper_encoder_uses_real_length(tmp_path: Path, tiny: Callable[..., Path]) -> None:
    import soundfile as sf
    import torch
    from scipy.signal import resample_poly
    from transformers import AutoFeatureExtractor, AutoModel

    ckpt = tiny("whisper", layers=2)
    wav = sorted(EMODB_WAV.glob("*.wav"))[0]
    (tmp_path / "in").mkdir()
    os.symlink(wav, tmp_path / "in" / wav.name)
    for level in ("UTT", "FRA"):
        report = extract_features("audio", ckpt, tmp_path / "in", tmp_path / f"w-{level}", layers="last")
        assert report.ok
    frames = np.load(tmp_path / "w-FRA" / f"{wav.stem}.npy")
    assert frames.shape == (100, 32)  # 2 s → 200 mel frames → 100 encoder frames, not the padded 1500

    samples, _ = sf.read(wav, dtype="float32")
    samples = resample_poly(samples, 320, 441).astype(np.float32)
    features = AutoFeatureExtractor.from_pretrained(ckpt)(samples, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        encoded = AutoModel.from_pretrained(ckpt).get_encoder()(features.input_features).last_hidden_state[0]
    np.testing.assert_allclose(frames, encoded[:100].numpy(), atol=1e-4)
    np.testing.assert_allclose(np.load(tmp_path / "w-UTT" / f"{wav.stem}.npy"), frames.mean(axis=0), atol=1e-5)
