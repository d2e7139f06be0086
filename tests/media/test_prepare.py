"""``mer-ensemble prepare`` on small videos made from real EmoDB speech and a real face photo."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mer_ensemble.cli import app
from tests.media.videos import emodb_names, emodb_wav, make_videos, needs_emodb

runner = CliRunner()
pytestmark = needs_emodb


def _prepare(*args: object):
    return runner.invoke(app, ["prepare", *map(str, args), "--no-progress"])


def _manifest(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "prepare-manifest.csv", newline="") as handle:
        return {row["name"]: row for row in csv.DictReader(handle)}


def _boxes(out: Path, name: str) -> list[dict[str, str]]:
    with open(out / "faces" / name / "boxes.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    folder = tmp_path_factory.mktemp("videos")
    truth = make_videos(folder, emodb_names(10))  # names 5 and 10 have no face
    return folder, truth


@pytest.fixture(scope="module")
def prepared(videos, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prep") / "out"
    result = _prepare("-i", videos[0], "-o", out, "--jobs", 1)
    assert result.exit_code == 0, result.output
    return out


def test_audio_is_16k_mono_and_matches_the_speech(videos, prepared: Path):
    import soundfile as sf

    from mer_ensemble.extract.audio import resample

    folder, truth = videos
    for name in truth:
        info = sf.info(str(prepared / "audio" / f"{name}.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        got, _ = sf.read(str(prepared / "audio" / f"{name}.wav"), dtype="float32")
        wave, rate = emodb_wav(name)
        expected = resample(wave, rate, 16000)
        assert abs(len(got) - len(expected)) < 0.05 * 16000  # the AAC encoder adds at most a frame or two
        # the speech survives the AAC round trip: strongly correlated at the best lag
        n = min(len(got), len(expected)) - 2048
        lags = [np.corrcoef(got[lag : lag + n], expected[:n])[0, 1] for lag in range(0, 2048, 8)]
        assert max(lags) > 0.9, (name, max(lags))


def test_face_boxes_match_the_photo_and_faceless_videos_have_none(videos, prepared: Path):
    from mer_ensemble.media.faces import iou

    _, truth = videos
    manifest = _manifest(prepared)
    ious, faceless = [], 0
    for name, boxes in truth.items():
        rows = _boxes(prepared, name)
        crops = sorted(p.name for p in (prepared / "faces" / name).glob("*.jpg"))
        assert crops == [f"{int(r['frame']):06d}.jpg" for r in rows]
        assert int(manifest[name]["faces"]) == len(rows)
        if np.isnan(boxes).all():
            faceless += 1
            assert rows == [] and manifest[name]["status"] == "no_face"
            continue
        assert manifest[name]["status"] == "ok" and manifest[name]["frames"] == str(len(boxes))
        for row in rows:
            found = np.array([float(row[k]) for k in ("x1", "y1", "x2", "y2")])
            ious.append(iou(found, boxes[int(row["frame"])]))
    assert faceless == 2
    assert len(ious) >= 8 * 9  # 5 samples per second of 2 s clips, most frames found
    assert np.mean(np.array(ious) >= 0.4) >= 0.9, np.round(ious, 2)


def test_face_crops_are_square_of_the_asked_size(videos, prepared: Path):
    from PIL import Image

    name = next(iter(videos[1]))
    crop = next((prepared / "faces" / name).glob("*.jpg"))
    with Image.open(crop) as image:
        assert image.size == (112, 112)


def test_rerun_skips_finished_videos_and_redoes_a_changed_one(videos, tmp_path: Path):
    folder, truth = videos
    src = tmp_path / "in"
    names = list(truth)[:3]
    src.mkdir()
    for name in names:
        shutil.copy(folder / f"{name}.mp4", src)
    out = tmp_path / "out"
    assert _prepare("-i", src, "-o", out, "--jobs", 1).exit_code == 0
    before = {n: (out / "audio" / f"{n}.wav").stat().st_mtime_ns for n in names}
    again = _prepare("-i", src, "-o", out, "--jobs", 1)
    assert again.exit_code == 0 and "(0 prepared now, 3 skipped)" in again.output
    assert {n: (out / "audio" / f"{n}.wav").stat().st_mtime_ns for n in names} == before
    (src / f"{names[0]}.mp4").write_bytes(b"not a video any more")
    changed = _prepare("-i", src, "-o", out, "--jobs", 1)
    assert changed.exit_code == 2 and "(1 prepared now, 2 skipped)" in changed.output
    row = _manifest(out)[names[0]]
    assert row["status"] == "failed" and names[0] in row["error"]
    assert not (out / "audio" / f"{names[0]}.wav").exists() and not (out / "faces" / names[0]).exists()
    other = _prepare("-i", src, "-o", out, "--fps", 2)
    assert other.exit_code == 1 and "other settings (fps)" in other.output


def test_bad_videos_are_rows_and_the_rest_goes_on(videos, tmp_path: Path):
    """Corrupt, empty, truncated, not a video, no audio, silent: one row each, the good video done."""
    from mer_ensemble.media.testing import make_video

    folder, truth = videos
    src = tmp_path / "in"
    src.mkdir()
    good = next(iter(truth))
    shutil.copy(folder / f"{good}.mp4", src)
    data = (folder / f"{good}.mp4").read_bytes()
    (src / "empty.mp4").write_bytes(b"")
    (src / "random.mkv").write_bytes(np.random.default_rng(0).bytes(5000))
    (src / "notes.avi").write_text("this is a text file, not a video\n")
    (src / "truncated.mp4").write_bytes(data[: len(data) // 3])
    make_video(src / "mute.mkv", None, seconds=1.0)
    make_video(src / "silent.mkv", np.zeros(16000, np.float32), 16000, face=False)
    (src / "readme.txt").write_text("ignored: not a video extension")
    result = _prepare("-i", src, "-o", tmp_path / "out", "--jobs", 1)
    assert result.exit_code == 2, result.output
    assert "4 failed" in result.output
    rows = _manifest(tmp_path / "out")
    assert set(rows) == {good, "empty", "random", "notes", "truncated", "mute", "silent"}
    assert rows[good]["status"] == "ok"
    for name in ("empty", "random", "notes", "truncated"):
        assert rows[name]["status"] == "failed", rows[name]
        assert rows[name]["error"].count("\n") == 0 and name in rows[name]["error"]
        assert not (tmp_path / "out" / "audio" / f"{name}.wav").exists()
    assert rows["mute"]["status"] == "no_audio" and int(rows["mute"]["faces"]) > 0
    assert not (tmp_path / "out" / "audio" / "mute.wav").exists()
    assert rows["silent"]["status"] == "silent+no_face"
    leftovers = [p for p in (tmp_path / "out").rglob("*") if ".tmp" in p.name]
    assert leftovers == []


def test_parallel_jobs_give_the_same_results(videos, prepared: Path, tmp_path: Path):
    folder, truth = videos
    src = tmp_path / "in"
    src.mkdir()
    names = list(truth)[:4]
    for name in names:
        shutil.copy(folder / f"{name}.mp4", src)
    result = _prepare("-i", src, "-o", tmp_path / "out", "--jobs", 2)
    assert result.exit_code == 0, result.output
    for name in names:
        assert _boxes(tmp_path / "out", name) == _boxes(prepared, name)
        assert (tmp_path / "out" / "audio" / f"{name}.wav").read_bytes() == (
            prepared / "audio" / f"{name}.wav").read_bytes()


def test_scene_frames_and_other_containers(videos, tmp_path: Path):
    from mer_ensemble.media.testing import make_video

    name = next(iter(videos[1]))
    wave, rate = emodb_wav(name)
    src = tmp_path / "in"
    src.mkdir()
    for ext in (".mkv", ".webm", ".avi"):
        make_video(src / f"clip{ext.replace('.', '_')}{ext}", wave, rate)
    result = _prepare("-i", src, "-o", tmp_path / "out", "--jobs", 1, "--scene-every", 10, "--fps", 2)
    assert result.exit_code == 0, result.output
    for row in _manifest(tmp_path / "out").values():
        assert row["status"] == "ok" and row["frames"] == "50" and row["faces"] == "4", row
        scenes = sorted(p.name for p in (tmp_path / "out" / "frames" / row["name"]).iterdir())
        assert scenes == [f"{i:06d}.jpg" for i in range(0, 50, 10)]


def test_bad_options_are_one_line(tmp_path: Path):
    (tmp_path / "in").mkdir()
    result = _prepare("-i", tmp_path / "in", "-o", tmp_path / "out")
    assert result.exit_code == 1 and "no video files" in result.output
    result = _prepare("-i", tmp_path / "in", "-o", tmp_path / "out", "--detector", "mtcnn")
    assert result.exit_code == 1 and "--detector 'mtcnn'" in result.output
