"""MER-NOISE on EmoDB: clean, noisy and denoised test audio, per feature.

1. the test speakers' wavs (15/16) are corrupted as the organisers did (``mer-ensemble corrupt``:
   other test utterances mixed in at an SNR drawn from the integers 5..10 dB);
2. the noisy copies are denoised (``mer-ensemble denoise``, spectral gating);
3. per feature -- eGeMAPS (``extract --model opensmile:eGeMAPSv02``, 88) and MFCC-80 statistics
   (``scripts/bench_noise.py``'s) -- of the clean training audio and of the clean / noisy /
   denoised test audio;
4. ``train-all`` on the clean training speakers (linear and mlp, speaker-grouped 5-fold), the test
   rows read from the clean, noisy or denoised feature root; and, as ``features -c`` with
   ``denoise: spectral`` does, on the denoised training audio with the denoised noisy test audio;
   test weighted F1 per run against ``test-truth.csv`` (read only here, after training).

    python scripts/bench_denoise.py --work /tmp/denoise-bench
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_noise import write_features as write_mfcc  # noqa: E402
from benchlib import markdown_table, run_cli, test_scores  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EMODB = Path(os.environ.get("MER_SHARED_DATA", REPO.parent / "shared" / "data")) / "emodb"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/denoise-bench"))
    args = parser.parse_args()
    work = args.work
    labels = pd.read_csv(EMODB / "label-train.csv")
    test = pd.read_csv(EMODB / "test-names.csv")
    audio = {"clean": work / "wav" / "test"}
    audio["clean"].mkdir(parents=True, exist_ok=True)
    for name in test["name"]:
        link = audio["clean"] / f"{name}.wav"
        if not link.exists():
            link.symlink_to(EMODB / "wav" / f"{name}.wav")
    audio["noisy"], audio["denoised"] = work / "wav" / "noisy", work / "wav" / "denoised"
    if not (audio["noisy"] / "corrupt-manifest.csv").is_file():
        run_cli("corrupt", "-i", audio["clean"], "-o", audio["noisy"], "--seed", 2, "--no-progress")
    run_cli("denoise", "-i", audio["noisy"], "-o", audio["denoised"], "--no-progress")
    train_wav = work / "wav" / "train"
    train_wav.mkdir(parents=True, exist_ok=True)
    for name in labels["name"]:
        link = train_wav / f"{name}.wav"
        if not link.exists():
            link.symlink_to(EMODB / "wav" / f"{name}.wav")
    train_denoised = work / "wav" / "train-denoised"
    run_cli("denoise", "-i", train_wav, "-o", train_denoised, "--no-progress")
    train_roots = {"clean": work / "features-train", "denoised": work / "features-train-denoised"}
    for root, folder in zip(train_roots.values(), (train_wav, train_denoised), strict=True):
        run_cli("extract", "-m", "audio", "--model", "opensmile:eGeMAPSv02", "-i", folder, "-o",
                root / "eGeMAPS_UTT", "--no-progress")
        if not (root / "mfcc40-UTT").is_dir():
            write_mfcc(folder, root / "mfcc40-UTT", list(labels["name"]))
    roots = {}
    for condition, folder in audio.items():
        roots[condition] = work / f"features-test-{condition}"
        run_cli("extract", "-m", "audio", "--model", "opensmile:eGeMAPSv02", "-i", folder, "-o",
            roots[condition] / "eGeMAPS_UTT", "--no-progress")
        if not (roots[condition] / "mfcc40-UTT").is_dir():
            write_mfcc(folder, roots[condition] / "mfcc40-UTT", list(test["name"]))
    truth = pd.read_csv(EMODB / "test-truth.csv").set_index("name")["discrete"]
    scores: dict[tuple[str, str], dict[str, float]] = {}
    cv: dict[tuple[str, str, str], float] = {}
    for feature in ("eGeMAPS_UTT", "mfcc40-UTT"):
        conditions = [(c, root, train_roots["clean"]) for c, root in roots.items()]
        conditions.append(("denoised everywhere", roots["denoised"], train_roots["denoised"]))
        for condition, root, train_root in conditions:
            cfg = {
                "task": "generic",
                "data": {"layout": "mer2024", "root": str(EMODB), "label_file": "label-train.csv",
                         "test_file": "test-names.csv", "targets": ["discrete"], "group_by": "speaker",
                         "feature_root": [str(root), str(train_root)], "features": {"audio": [feature]}},
                "cv": {"folds": 5, "seeds": [0]},
                "models": [{"name": "linear", "id": "linear"}, {"name": "mlp", "id": "mlp", "seeds": [0, 1, 2]}],
            }
            path = work / f"{feature}-{condition.replace(' ', '-')}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            wd = work / f"wd-{feature}-{condition.replace(' ', '-')}"
            run_cli("train-all", "-c", path, "--workdir", wd)
            for run, (cv_mean, test) in test_scores(path, wd, truth).items():
                scores.setdefault((feature, run), {})[condition] = test
                cv[(feature, run, condition)] = cv_mean
    rows = [[feature, run, f"{cv[(feature, run, 'clean')]:.4f}", f"{by['clean']:.4f}", f"{by['noisy']:.4f}",
             f"{by['denoised']:.4f}", f"{cv[(feature, run, 'denoised everywhere')]:.4f}",
             f"{by['denoised everywhere']:.4f}"] for (feature, run), by in scores.items()]
    markdown_table("EmoDB test speakers 15/16, audio corrupted as MER-NOISE (test weighted F1)",
                   ["feature", "run", "CV (clean, speaker-grouped)", "test clean", "test noisy (5..10 dB)",
                    "test denoised (spectral)", "CV (denoised training audio)", "test denoised, trained denoised"],
                   rows)


if __name__ == "__main__":
    main()
