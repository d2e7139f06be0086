"""``mer-ensemble corrupt``: noisy copies as MER-NOISE's test set was made, measured back."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mer_ensemble.cli import app

soundfile = pytest.importorskip("soundfile")
Image = pytest.importorskip("PIL.Image")

runner = CliRunner()
RATE = 16000


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _wavs(folder: Path, n: int = 4, subtype: str = "FLOAT", rate: int = RATE) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    t = np.arange(int(0.5 * rate)) / rate
    for i in range(n):
        wave = 0.1 * np.sin(2 * np.pi * (200 + 90 * i) * t) + 0.01 * rng.normal(size=t.size)
        soundfile.write(folder / f"utt{i}.wav", wave * (1 + i), rate, subtype=subtype)
    return folder


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("subtype, tolerance", [("FLOAT", 0.01), ("PCM_16", 0.3)])
def test_audio_is_mixed_at_the_recorded_snr(tmp_path: Path, subtype: str, tolerance: float):
    src = _wavs(tmp_path / "in", subtype=subtype)
    before = _digest(src)
    result = invoke("corrupt", "-i", src, "-o", tmp_path / "out", "--seed", 7, "--no-progress")
    assert result.exit_code == 0, result.output
    assert _digest(src) == before  # inputs untouched
    manifest = pd.read_csv(tmp_path / "out" / "corrupt-manifest.csv")
    assert sorted(manifest["file"]) == [f"utt{i}.wav" for i in range(4)]
    for row in manifest.itertuples():
        assert row.kind == "audio" and 5 <= row.snr_db <= 10 and row.seed == 7
        assert row.noise_source != row.file and (src / row.noise_source).is_file()  # other speech of the set
        clean, _ = soundfile.read(src / row.file)
        noisy, rate = soundfile.read(tmp_path / "out" / row.file)
        assert rate == RATE and noisy.shape == clean.shape
        assert soundfile.info(str(tmp_path / "out" / row.file)).subtype == subtype
        added = noisy / row.gain - clean
        measured = 10 * np.log10(np.mean(clean**2) / np.mean(added**2))
        assert abs(measured - row.snr_db) < tolerance, (row.file, measured, row.snr_db)


def test_seeded_reproducible_and_never_writes_inputs(tmp_path: Path):
    src = _wavs(tmp_path / "in")
    for out, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert invoke("corrupt", "-i", src, "-o", tmp_path / out, "--seed", seed, "--no-progress").exit_code == 0
    a, b, c = (_digest(tmp_path / o) for o in "abc")
    assert a == b and a != c
    one = pd.read_csv(tmp_path / "a" / "corrupt-manifest.csv")
    assert one.equals(pd.read_csv(tmp_path / "b" / "corrupt-manifest.csv"))
    for out, message in ((src, "is the input folder or inside it"), (src / "sub", "is the input folder or inside it"),
                         (tmp_path / "a", "is not empty")):
        result = invoke("corrupt", "-i", src, "-o", out, "--no-progress")
        assert result.exit_code == 1 and message in result.output and result.output.count("\n") == 1


def test_noise_dir_is_the_noise_source_and_resampled(tmp_path: Path):
    src = _wavs(tmp_path / "in", n=1)
    noise = tmp_path / "noise"
    noise.mkdir()
    soundfile.write(noise / "babble.wav", np.random.default_rng(0).normal(0, 0.05, 8000), 8000)
    result = invoke("corrupt", "-i", src, "-o", tmp_path / "out", "--noise-dir", noise, "--snr-min", 6,
                    "--snr-max", 6, "--no-progress")
    assert result.exit_code == 0, result.output
    row = pd.read_csv(tmp_path / "out" / "corrupt-manifest.csv").iloc[0]
    assert row["noise_source"] == "babble.wav" and row["snr_db"] == 6
    clean, _ = soundfile.read(src / "utt0.wav")
    noisy, _ = soundfile.read(tmp_path / "out" / "utt0.wav")
    measured = 10 * np.log10(np.mean(clean**2) / np.mean((noisy / row["gain"] - clean) ** 2))
    assert abs(measured - 6) < 0.01
    alone = invoke("corrupt", "-i", src, "-o", tmp_path / "out2", "--no-progress")
    assert alone.exit_code == 1 and "--noise-dir" in alone.output


def test_frames_are_blurred_by_the_recorded_factor(tmp_path: Path):
    from mer_ensemble.corrupt import blur

    src = tmp_path / "faces"
    rng = np.random.default_rng(0)
    for clip in ("clip0", "clip1", "clip2", "clip3"):
        (src / clip).mkdir(parents=True)
        for f in range(2):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(src / clip / f"{f:03d}.png")
    Image.fromarray(rng.integers(0, 255, (12, 8, 3), dtype=np.uint8)).save(src / "single.png")
    before = _digest(src)
    result = invoke("corrupt", "-i", src, "-o", tmp_path / "out", "--seed", 3, "--no-progress")
    assert result.exit_code == 0, result.output
    assert _digest(src) == before
    manifest = pd.read_csv(tmp_path / "out" / "corrupt-manifest.csv").set_index("file")
    assert set(manifest["kind"]) == {"frames", "image"} and set(manifest["blur_factor"]) <= {1, 2, 4}
    for file, row in manifest.iterrows():
        frames = [Path(file)] if row["kind"] == "image" else [Path(file) / f"{f:03d}.png" for f in range(2)]
        for frame in frames:
            with Image.open(src / frame) as original, Image.open(tmp_path / "out" / frame) as copy:
                assert copy.size == original.size
                expected = np.asarray(blur(original.convert("RGB"), int(row["blur_factor"])))
                assert np.array_equal(np.asarray(copy.convert("RGB")), expected)
                if row["blur_factor"] > 1:
                    assert not np.array_equal(np.asarray(copy), np.asarray(original))
    result = invoke("corrupt", "-i", src, "-o", tmp_path / "four", "--blur", "4", "--no-progress")
    assert result.exit_code == 0
    assert set(pd.read_csv(tmp_path / "four" / "corrupt-manifest.csv")["blur_factor"]) == {4}


def test_snr_is_a_whole_db_by_default_and_uniform_on_request(tmp_path: Path):
    src = _wavs(tmp_path / "in", n=6)
    assert invoke("corrupt", "-i", src, "-o", tmp_path / "int", "--no-progress").exit_code == 0
    snrs = pd.read_csv(tmp_path / "int" / "corrupt-manifest.csv")["snr_db"]
    assert all(s == int(s) and 5 <= s <= 10 for s in snrs)
    assert invoke("corrupt", "-i", src, "-o", tmp_path / "uni", "--snr-draw", "uniform", "--no-progress").exit_code == 0
    snrs = pd.read_csv(tmp_path / "uni" / "corrupt-manifest.csv")["snr_db"]
    assert any(s != int(s) for s in snrs)
    bad = invoke("corrupt", "-i", src, "-o", tmp_path / "x", "--snr-min", 5.5, "--no-progress")
    assert bad.exit_code == 1 and "integer SNRs need whole-number bounds" in bad.output
    bad = invoke("corrupt", "-i", src, "-o", tmp_path / "x", "--blur", "3", "--no-progress")
    assert bad.exit_code == 1 and "pyramid blur (pyrDown/pyrUp) needs powers of two" in bad.output


def test_pyramid_blur_is_the_organisers_pyrdown_pyrup():
    cv2 = pytest.importorskip("cv2")
    from mer_ensemble.corrupt import blur_array

    rgb = np.random.default_rng(0).integers(0, 255, (37, 50, 3), dtype=np.uint8)
    expected = cv2.pyrUp(cv2.pyrUp(cv2.pyrDown(cv2.pyrDown(rgb)), dstsize=(25, 19)), dstsize=(50, 37))
    assert np.array_equal(blur_array(rgb, 4), expected)
    assert np.array_equal(blur_array(rgb, 1), rgb)
    assert blur_array(rgb, 2, "resize").shape == rgb.shape


def test_videos_are_read_directly(tmp_path: Path):
    """Each video's audio track is mixed with another video's at a whole-dB SNR, every frame blurred
    by the clip's factor; container, frame count, rate and duration are kept."""
    pytest.importorskip("av")
    pytest.importorskip("skimage")
    cv2 = pytest.importorskip("cv2")
    from mer_ensemble.corrupt import blur_array
    from mer_ensemble.media.testing import make_video
    from mer_ensemble.media.video import VideoReader, read_audio_track

    src = tmp_path / "videos"
    src.mkdir()
    t = np.arange(RATE) / RATE
    for i, ext in enumerate((".mkv", ".mp4", ".avi")):
        tone = 0.2 * np.sin(2 * np.pi * (220 + 110 * i) * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2
        make_video(src / f"clip{i}{ext}", tone, RATE, seed=i, video_codec="libx264" if ext != ".avi" else None)
    result = invoke("corrupt", "-i", src, "-o", tmp_path / "out", "--seed", 5, "--blur", "4", "--no-progress")
    assert result.exit_code == 0, result.output
    manifest = pd.read_csv(tmp_path / "out" / "corrupt-manifest.csv").set_index("file")
    assert sorted(manifest.index) == ["clip0.mkv", "clip1.mp4", "clip2.avi"]
    for file, row in manifest.iterrows():
        assert row["kind"] == "video" and row["blur_factor"] == 4 and row["snr_db"] in range(5, 11)
        assert row["noise_source"] != file and row["noise_source"] in manifest.index
        clean, noisy = VideoReader(src / file), VideoReader(tmp_path / "out" / file)
        clean_frames = [f for _, f in clean.frames(lambda i, s: True)]
        noisy_frames = [f for _, f in noisy.frames(lambda i, s: True)]
        assert noisy.n_frames == clean.n_frames == row["frames"] == 25
        assert abs(noisy.duration - clean.duration) < 0.1
        # the frames are the clean ones blurred (up to the re-encoding): closer to the blur than to the clean frame
        for a, b in zip(clean_frames[::8], noisy_frames[::8], strict=True):
            blurred = blur_array(a, 4).astype(float)
            assert np.abs(b - blurred).mean() < 0.5 * np.abs(b - a.astype(float)).mean()
        # the audio: the clean track plus the other video's track scaled to the recorded SNR
        speech = read_audio_track(src / file, RATE).astype(float)
        mixed = read_audio_track(tmp_path / "out" / file, RATE).astype(float)
        n = min(len(speech), len(mixed))
        added = mixed[:n] / row["gain"] - speech[:n]
        measured = 10 * np.log10(np.mean(speech[:n] ** 2) / np.mean(added**2))
        assert abs(measured - row["snr_db"]) < 1.5, (file, measured, row["snr_db"])  # lossy codecs in between
    del cv2
