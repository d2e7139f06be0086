"""MER-NOISE on real speech: train on clean EmoDB audio, test on a noisy copy (issue 12).

1. ``mer-ensemble corrupt`` makes noisy copies of the EmoDB wavs the way MER-NOISE's test set
   was made (other speech mixed in at 5-10 dB SNR), separately for the training speakers
   (noise from training utterances: the variants) and the test speakers (noise from test
   utterances), so no test audio reaches training;
2. 80 hand-crafted MFCC statistics (40 MFCC means + stds; no pretrained audio model is
   available offline) per wav, clean and noisy;
3. ``train-all`` twice: scored on the clean test set, and on the noisy one (two feature
   roots, the noisy test features first), each with linear, mlp and attention_fusion
   (audio only) trained clean, and attention_fusion trained with ``data.noise_variants``
   (``variant_prob: 0.5``);
4. test weighted F1 of every run against ``test-truth.csv`` (read only here, after training).

    OMP_NUM_THREADS=1 python scripts/bench_noise.py --work /tmp/noise-bench
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from benchlib import markdown_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EMODB = Path(os.environ.get("MER_SHARED_DATA", REPO.parent / "shared" / "data")) / "emodb"


def mfcc_stats(wave: np.ndarray, rate: int, n_mfcc: int = 40, n_mels: int = 64) -> np.ndarray:
    """``(2 * n_mfcc,)`` means and stds over frames of the MFCCs (25 ms Hann windows, 10 ms hop)."""
    from scipy.fft import dct

    n_fft, hop = int(0.025 * rate), int(0.010 * rate)
    frames = np.lib.stride_tricks.sliding_window_view(wave, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    edges = 700 * (10 ** (np.linspace(mel(20), mel(rate / 2), n_mels + 2) / 2595) - 1)
    bins = np.fft.rfftfreq(n_fft, 1 / rate)
    fbank = np.zeros((n_mels, len(bins)))
    for m in range(n_mels):
        lo, mid, hi = edges[m: m + 3]
        fbank[m] = np.clip(np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), 0, None)
    logmel = np.log(power @ fbank.T + 1e-10)
    coeffs = dct(logmel, type=2, axis=1, norm="ortho")[:, :n_mfcc]
    return np.concatenate([coeffs.mean(0), coeffs.std(0)]).astype(np.float32)


def write_features(wav_dir: Path, out: Path, names: list[str]) -> None:
    import soundfile as sf

    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        wave, rate = sf.read(str(wav_dir / f"{name}.wav"), dtype="float64")
        np.save(out / f"{name}.npy", mfcc_stats(wave, rate))


def run(*args: object) -> str:
    cmd = [sys.executable, "-m", "mer_ensemble", *map(str, args)]
    print("$", "mer-ensemble", " ".join(map(str, args)), file=sys.stderr)
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MER_NO_PROGRESS": "1"})
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/noise-bench"))
    parser.add_argument("--seeds", type=int, default=2, help="model seeds per run")
    args = parser.parse_args()
    work = args.work
    labels = pd.read_csv(EMODB / "label-train.csv")
    test = pd.read_csv(EMODB / "test-names.csv")
    for split, names in (("train", labels["name"]), ("test", test["name"])):
        src = work / "wav" / split
        src.mkdir(parents=True, exist_ok=True)
        for n in names:
            link = src / f"{n}.wav"
            if not link.exists():
                link.symlink_to(EMODB / "wav" / f"{n}.wav")
        if not (work / "noisy" / split / "corrupt-manifest.csv").is_file():
            run("corrupt", "-i", src, "-o", work / "noisy" / split, "--seed", {"train": 1, "test": 2}[split],
                "--no-progress")
    clean_root, noisy_test_root = work / "features", work / "features-noisy-test"
    everyone = [*labels["name"], *test["name"]]
    if not (clean_root / "mfcc40-UTT").is_dir():
        write_features(EMODB / "wav", clean_root / "mfcc40-UTT", everyone)
        write_features(work / "noisy" / "train", clean_root / "mfcc40-noise-UTT", list(labels["name"]))
        write_features(work / "noisy" / "test", noisy_test_root / "mfcc40-UTT", list(test["name"]))
    truth = pd.read_csv(EMODB / "test-truth.csv").set_index("name")["discrete"]
    models = [
        {"name": "linear", "id": "linear"},
        {"name": "mlp", "id": "mlp"},
        {"name": "attention_fusion", "id": "attn_clean"},
        {"name": "attention_fusion", "id": "attn_variants", "params": {"variant_prob": 0.5}},
    ]
    scores: dict[str, dict[str, float]] = {}
    cv: dict[str, str] = {}
    for condition, roots in (("clean", [clean_root]), ("noisy", [noisy_test_root, clean_root])):
        cfg = {
            "task": "generic",
            "data": {"layout": "mer2024", "root": str(EMODB), "label_file": "label-train.csv",
                     "test_file": "test-names.csv", "targets": ["discrete"], "group_by": "speaker",
                     "feature_root": [str(r) for r in roots], "features": {"audio": ["mfcc40-UTT"]},
                     "noise_variants": {"mfcc40-UTT": ["mfcc40-noise-UTT"]}},
            "cv": {"folds": 5, "seeds": list(range(args.seeds))},
            "train": {"jobs": 1},
            "models": models,
        }
        config = work / f"{condition}.yaml"
        config.write_text(yaml.safe_dump(cfg))
        wd = work / f"wd-{condition}"
        run("train-all", "-c", config, "--workdir", wd)
        from mer_ensemble.config import load_config
        from mer_ensemble.data import load_dataset
        from mer_ensemble.experiment import data_settings
        from mer_ensemble.metrics import weighted_f1
        from mer_ensemble.store import load_runs

        ds = load_dataset(data_settings(load_config(config)), None)
        classes = ds.task.target("discrete").classes
        for record in load_runs(wd):
            rid = record.manifest["run_id"]
            names = ds.names[record.test_rows]
            y_true = np.array([classes.index(c) for c in truth.loc[names]])
            scores.setdefault(rid, {})[condition] = weighted_f1(y_true, record.test["discrete"].argmax(1))
            cv[rid] = f"{record.manifest['cv']['discrete']['mean']:.4f}"
    rows = []
    for rid, by in scores.items():
        trained = "clean + noisy variants" if rid == "attn_variants" else "clean"
        rows.append([rid, trained, cv[rid], f"{by['clean']:.4f}", f"{by['noisy']:.4f}",
                     f"{by['noisy'] - by['clean']:+.4f}"])
    markdown_table("EmoDB, MFCC-80 audio, test speakers 15/16 (weighted F1)",
                   ["run", "trained on", "CV (clean, speaker-grouped)", "test clean", "test noisy (5-10 dB)",
                    "noisy - clean"], rows)


if __name__ == "__main__":
    main()
