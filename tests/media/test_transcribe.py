"""``mer-ensemble transcribe`` with a tiny random Whisper (encoder + decoder + byte-level tokenizer)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mer_ensemble.cli import app
from tests.conftest import SHARED_DATA

pytest.importorskip("transformers")
sf = pytest.importorskip("soundfile")
WAV = SHARED_DATA / "emodb" / "wav"
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mer_ensemble.extract.testing import save_tiny_checkpoint

    return save_tiny_checkpoint("whisper-asr", tmp_path_factory.mktemp("ckpt") / "whisper", layers=2)


@pytest.fixture
def audio(tmp_path: Path) -> Path:
    folder = tmp_path / "audio"
    folder.mkdir()
    rng = np.random.default_rng(0)
    if WAV.is_dir():
        for path in sorted(WAV.glob("*.wav"))[:3]:
            (folder / path.name).symlink_to(path)
    else:
        for i in range(3):
            sf.write(folder / f"u{i}.wav", 0.1 * rng.normal(size=16000 * (i + 1)), 16000)
    sf.write(folder / "long.wav", 0.1 * rng.normal(size=16000 * 65), 16000)  # three 30 s chunks
    return folder


def _transcribe(*args: object):
    return runner.invoke(app, ["transcribe", *map(str, args), "--no-progress"])


def _rows(path: Path) -> dict[str, str]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["name", "sentence"]
        return {row["name"]: row["sentence"] for row in reader}


def test_batched_chunked_transcripts_equal_one_by_one(whisper: Path, audio: Path, tmp_path: Path):
    from mer_ensemble.extract.audio import read_audio
    from mer_ensemble.media.transcribe import _chunks, _Transcriber

    out = tmp_path / "transcription.csv"
    result = _transcribe("-i", audio, "-o", out, "--model", whisper, "--batch-size", 3, "--max-new-tokens", 6)
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert sorted(rows) == sorted(p.stem for p in audio.glob("*.wav"))
    import torch

    single = _Transcriber(whisper, torch.device("cpu"), torch.float32, None, 1, 6)
    for name, text in rows.items():
        wave = read_audio(audio / f"{name}.wav", 16000)
        parts = [single.texts([chunk])[0] for chunk in _chunks(wave)]
        assert text == " ".join(p for p in parts if p), name
        assert text.strip()  # the random model writes something for every file
    assert len(_chunks(read_audio(audio / "long.wav", 16000))) == 3


def test_resume_language_and_pool_list(whisper: Path, audio: Path, tmp_path: Path):
    out = tmp_path / "t.csv"
    first = _transcribe("-i", audio, "-o", out, "--model", whisper, "--language", "de", "--max-new-tokens", 4)
    assert first.exit_code == 0, first.output
    again = _transcribe("-i", audio, "-o", out, "--model", whisper, "--language", "de")
    assert again.exit_code == 0 and "0 transcribed, 4 skipped" in again.output
    other = _transcribe("-i", audio, "-o", out, "--model", whisper, "--language", "zh")
    assert other.exit_code == 1 and "another checkpoint or language" in other.output
    bad = _transcribe("-i", audio, "-o", tmp_path / "x.csv", "--model", whisper, "--language", "klingon")
    assert bad.exit_code == 1 and "--language 'klingon'" in bad.output
    from mer_ensemble.data.layouts import _name_list

    assert sorted(_name_list(out, "pool name list")["name"]) == sorted(_rows(out))


def test_bad_input_is_one_line(whisper: Path, audio: Path, tmp_path: Path):
    from mer_ensemble.extract.testing import save_tiny_checkpoint

    (audio / "broken.wav").write_bytes(b"RIFF....not audio")
    out = tmp_path / "t.csv"
    result = _transcribe("-i", audio, "-o", out, "--model", whisper, "--max-new-tokens", 2)
    assert result.exit_code == 2 and "1 failed" in result.output
    assert "broken" in (tmp_path / "t-errors.csv").read_text() and "broken" not in _rows(out)
    hubert = save_tiny_checkpoint("hubert", tmp_path / "hubert", layers=1)
    wrong = _transcribe("-i", audio, "-o", tmp_path / "u.csv", "--model", hubert)
    assert wrong.exit_code == 1 and "transcribe needs a Whisper speech-to-text checkpoint" in wrong.output
    assert not (tmp_path / "u.csv").exists()
    missing = _transcribe("-i", audio, "-o", tmp_path / "u.csv", "--model", tmp_path / "nowhere")
    assert missing.exit_code == 1 and "checkpoint folder not found" in missing.output
