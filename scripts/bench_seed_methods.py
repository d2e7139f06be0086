"""Seed-method benchmarks (issue 7): each option of the fusion families on and off.

Every arm is an ``attention_fusion`` run trained by the k-fold runner (``train_all``) on
the same folds; the table shows the CV score (mean ± sd over the validation folds, each
fold scored by the model that did not train on it) and the test score of the fold models'
mean probabilities against the truth file (the truth is read for scoring only).

Parts (``--part``):

* ``emodb``: real EmoDB speech, audio (whisper-tiny + MFCC) and a nearly useless text
  modality (MiniLM of the read sentence; the ten sentences are spoken in every emotion).
  EmoDB has no unlabelled pool, so for cross-modal distribution matching the test
  utterances are copied into a pool under new names (transductive, the MER2024 setting in
  which the test set hides inside the unlabelled pool; their labels are never read).
* ``meld``: real MELD text, two targets (emotion, sentiment), a 7,989-row pool. One modality
  only, so cross-modal matching and modality dropout do not apply; task interaction does.
* ``meiju``: synthetic MEIJU@2025 Track 1 data (``make_demo`` layout ``meiju``, seed 0, dims
  256/256/128; frames mean-pooled to utterance vectors): two targets (emotion, intent) and a
  1,200-row pool, for task interaction and matching with two targets.
* ``demo``: synthetic MER2024-style data (``make_demo``, seed 0: 1,200 train, 3,000 pool,
  400 test; audio 1024, text 768, video 512). The test set is scored three times: clean,
  with the audio of every test row zeroed (a missing modality) and with the audio
  corrupted (``0.5·own + 0.5·another utterance's audio + Gaussian noise of 0.5 std``,
  babble-like). For the noisy-variant arm two variant folders of the audio feature are
  written for the training names with the same kind of corruption at mixing weights 0.3
  and 0.6 and other random partners (as participants build ``<feature>_<snr>_UTT`` folders).

Budget: every arm uses ``--epochs`` (default 30) with patience 8, hidden 128, batch 32,
5 folds, 3 model seeds (``--seeds``); two jobs in parallel, one torch thread each. The CV
score of an arm averages the seeds per fold ("folds better" compares those per-fold scores
with the baseline's, paired); its test score is that of the mean probabilities of all
fold × seed models.

    python scripts/bench_seed_methods.py --part all --out /tmp/seed-bench
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from benchlib import Parts  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MER_SHARED_DATA", REPO.parent / "shared" / "data"))
PARTS = Parts()
#: the seed methods every benchmark set compares (params of the fusion families on top of the baseline)
SEED_METHOD_ARMS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "aux_heads": {"aux_weight": 1.0},
    "cmdm_0.3": {"cmdm_weight": 0.3, "cmdm_rampup": 5},
    "cmdm_1": {"cmdm_weight": 1.0, "cmdm_rampup": 5},
    "mod_dropout": {"modality_dropout": 0.3},
    "feat_noise": {"feature_noise": 0.3},
}
part = PARTS


# ---------------------------------------------------------------------------------------------
# shared machinery


def link_feature(src: Path, dst: Path, names: dict[str, str]) -> None:
    """``dst/<new>.npy`` -> ``src/<old>.npy`` for every ``new: old`` of ``names`` (symlinks)."""
    dst.mkdir(parents=True, exist_ok=True)
    for new, old in names.items():
        link = dst / f"{new}.npy"
        if not link.exists():
            link.symlink_to((src / f"{old}.npy").resolve())


def run_arms(name: str, data: dict[str, Any], arms: dict[str, dict[str, Any]], truth: pd.DataFrame,
             args: argparse.Namespace, seeds: int, subsets: dict[str, str] | None = None,
             task: str = "generic") -> list[dict[str, Any]]:
    """Train every arm with ``train_all`` (``seeds`` model seeds on the same folds) and score
    it; ``subsets``: label -> test-name prefix ("" for the clean rows, which have no prefix)."""
    from mer_ensemble.config import load_config
    from mer_ensemble.experiment import Experiment
    from mer_ensemble.metrics import combine_scores
    from mer_ensemble.training.runner import train_all

    workdir = Path(args.out) / name / "wd"
    base = {"epochs": args.epochs, "patience": 8}
    cfg_dict = {
        "task": task,
        "data": data,
        "cv": {"folds": args.folds, "seeds": list(range(seeds))},
        "train": {"jobs": args.jobs, "threads": 1, "device": "cpu"},
        "models": [{"name": "attention_fusion", "id": arm, "params": {**base, **params}}
                   for arm, params in arms.items()],
    }
    path = Path(args.out) / name / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg_dict, sort_keys=False))
    cfg = load_config(path)
    start = time.perf_counter()
    records = train_all(Experiment.open(cfg, workdir), progress=False)
    print(f"[{name}] trained {len(records)} arms in {time.perf_counter() - start:.0f}s", flush=True)
    from mer_ensemble.data import load_dataset
    from mer_ensemble.experiment import data_settings

    ds = load_dataset(data_settings(cfg), workdir)
    subsets = subsets or {"test": ""}
    results = []
    for record in records:
        cv = record.manifest["cv"]
        per_fold = [combine_scores([cv[t]["folds"][k] for t in record.targets], ds.task.combine)
                    for k in range(args.folds)]
        row: dict[str, Any] = {"part": name, "arm": record.key, "params": arms[record.key], "seeds": seeds,
                               "cv": record.manifest["combined"]["mean"], "cv_sd": record.manifest["combined"]["sd"],
                               "cv_folds": per_fold, "fit_seconds": record.manifest["fit_seconds"]}
        test_names = ds.names[record.test_rows]
        for label, prefix in subsets.items():
            if prefix:
                keep = np.array([n.startswith(prefix) for n in test_names])
                original = [n[len(prefix):] for n in test_names[keep]]
            else:
                prefixes = tuple(p for p in subsets.values() if p)
                keep = np.array([not (prefixes and n.startswith(prefixes)) for n in test_names])
                original = list(test_names[keep])
            scores = []
            for t in record.targets:
                classes = {c: i for i, c in enumerate(record.classes(t))}
                truth_of = dict(zip(truth["name"], truth[t], strict=True))
                y = np.array([classes[truth_of[n]] for n in original])
                scores.append(ds.task.target(t).score(y, record.test[t][keep].argmax(1)))
            row[label] = combine_scores(scores, ds.task.combine)
        results.append(row)
    (Path(args.out) / name / "results.json").write_text(json.dumps(results, indent=1))
    return results


def print_table(name: str, results: list[dict[str, Any]], columns: list[str]) -> None:
    """Markdown table; differences are against the first arm (the baseline). "folds better":
    the validation folds on which the arm beats the baseline (same folds, paired)."""
    print(f"\n### {name}\n")
    header = ["arm", "params", "CV (mean ± sd over folds)", "Δ CV", "folds better", *columns, "fit s"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---", "---", "---:", "---:", "---:", *["---:"] * len(columns), "---:"]) + "|")
    base = results[0]
    for r in results:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "(all off)"
        cells = [f"{r[c]:.4f}" + (f" ({r[c] - base[c]:+.4f})" if r is not base else "") for c in columns]
        diffs = np.subtract(r["cv_folds"], base["cv_folds"])
        delta = "" if r is base else f"{diffs.mean():+.4f}"
        better = "" if r is base else f"{int((diffs > 0).sum())}/{len(diffs)}"
        cv = f"{r['cv']:.4f} ± {r['cv_sd']:.4f}"
        print(f"| {r['arm']} | {params} | {cv} | {delta} | {better} | " + " | ".join(cells)
              + f" | {r['fit_seconds']:.0f} |")


# ---------------------------------------------------------------------------------------------
# parts


@part("emodb")
def bench_emodb(args: argparse.Namespace) -> list[dict[str, Any]]:
    src = SHARED / "emodb"
    root = Path(args.out) / "emodb" / "data"
    labels = pd.read_csv(src / "label-train.csv", dtype=str)
    test = pd.read_csv(src / "test-names.csv", dtype=str)
    root.mkdir(parents=True, exist_ok=True)
    labels.to_csv(root / "label-train.csv", index=False)
    test.to_csv(root / "test-names.csv", index=False)
    pool = test.assign(name="pool__" + test["name"])  # the test utterances, unlabelled, under new names
    pool.to_csv(root / "pool-names.csv", index=False)
    features = {"audio": ["whisper-tiny-UTT", "mfcc-UTT"], "text": ["minilm-UTT"]}
    for feature in features["audio"] + features["text"]:
        names = {n: n for n in list(labels["name"]) + list(test["name"])}
        names.update({p: n for p, n in zip(pool["name"], test["name"], strict=True)})
        link_feature(src / "features" / feature, root / "features" / feature, names)
    data = {"layout": "mer2024", "root": str(root), "label_file": "label-train.csv", "test_file": "test-names.csv",
            "pool_file": "pool-names.csv", "targets": ["discrete"], "group_by": "speaker", "features": features}
    arms = dict(SEED_METHOD_ARMS)
    truth = pd.read_csv(src / "test-truth.csv", dtype=str)
    results = run_arms("emodb", data, arms, truth, args, args.seeds)
    print_table("EmoDB (7 classes, weighted F1)", results, ["test"])
    return results


@part("meld")
def bench_meld(args: argparse.Namespace) -> list[dict[str, Any]]:
    src = SHARED / "meld"
    data = {"layout": "generic", "root": str(src), "targets": ["emotion", "sentiment"], "group_by": "dialogue",
            "features": {"text": ["minilm-UTT"]}}
    arms = {
        "baseline": {},
        "interaction": {"task_interaction": True},
        "feat_noise": {"feature_noise": 0.3},
    }
    truth = pd.read_csv(src / "truth.csv", dtype=str)
    results = run_arms("meld", data, arms, truth, args, args.seeds)
    print_table("MELD (emotion + sentiment, joint weighted F1)", results, ["test"])
    return results


def _babble(audio: np.ndarray, weight: float, noise: float, scale: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """``(1 - weight)·own + weight·another row + noise·std·ε``, ``(n, D)`` float32."""
    other = audio[rng.permutation(len(audio))]
    out = (1 - weight) * audio + weight * other + noise * scale * rng.standard_normal(audio.shape)
    return out.astype(np.float32)


@part("demo")
def bench_demo(args: argparse.Namespace) -> list[dict[str, Any]]:
    from mer_ensemble.data.demo import make_demo

    out = Path(args.out) / "demo"
    src = out / "source"
    if not (src / "demo-meta.json").is_file():
        make_demo(src, layout="mer2024", seed=0, overwrite=True)
    meta = json.loads((src / "demo-meta.json").read_text())
    audio_feature = meta["features"]["audio"]
    root = out / "data"
    labels = pd.read_csv(src / "label-disdim.csv", dtype=str)
    test = pd.read_csv(src / "test-names.csv", dtype=str)
    pool = pd.read_csv(src / "pool-names.csv", dtype=str)
    root.mkdir(parents=True, exist_ok=True)
    for name in ("label-disdim.csv", "pool-names.csv"):
        shutil.copy(src / name, root / name)
    copies = {"zero__": "audio zeroed", "noisy__": "audio corrupted"}
    tests = [test["name"]] + [prefix + test["name"] for prefix in copies]
    pd.DataFrame({"name": pd.concat(tests, ignore_index=True)}).to_csv(root / "test-names.csv", index=False)
    plain = list(labels["name"]) + list(pool["name"]) + list(test["name"])
    for modality, feature in meta["features"].items():
        names = {n: n for n in plain}
        if modality != "audio":
            names.update({prefix + n: n for prefix in copies for n in test["name"]})
        link_feature(src / "features" / feature, root / "features" / feature, names)
    rng = np.random.default_rng(7)
    audio_dir = src / "features" / audio_feature
    train_audio = np.stack([np.load(audio_dir / f"{n}.npy") for n in labels["name"]])
    scale = train_audio.std(axis=0)
    test_audio = np.stack([np.load(audio_dir / f"{n}.npy") for n in test["name"]])
    corrupted = {"zero__": np.zeros_like(test_audio), "noisy__": _babble(test_audio, 0.5, 0.5, scale, rng)}
    for prefix, values in corrupted.items():
        for n, row in zip(test["name"], values, strict=True):
            np.save(root / "features" / audio_feature / f"{prefix}{n}.npy", row)
    stem = audio_feature.removesuffix("-UTT")
    variants = []
    for weight in (0.3, 0.6):  # noisy copies of the training names at two noise levels
        folder = root / "features" / f"{stem}_mix{int(weight * 10)}_UTT"
        if not folder.is_dir():
            folder.mkdir()
            for n, row in zip(labels["name"], _babble(train_audio, weight, 0.5, scale, rng), strict=True):
                np.save(folder / f"{n}.npy", row)
        variants.append(folder.name)
    data = {"layout": "mer2024", "root": str(root), "label_file": "label-disdim.csv", "test_file": "test-names.csv",
            "pool_file": "pool-names.csv", "targets": ["discrete"],
            "classes": {"discrete": ["neutral", "angry", "happy", "sad", "worried", "surprise"]},
            "features": {m: [f] for m, f in meta["features"].items()},
            "noise_variants": {audio_feature: variants}}
    arms = {**SEED_METHOD_ARMS, "variants": {"variant_prob": 0.5},
            "dropout+variants": {"modality_dropout": 0.3, "variant_prob": 0.5}}
    truth = pd.read_csv(src / "truth-test.csv", dtype=str)
    subsets = {"test": "", "test, audio zeroed": "zero__", "test, audio corrupted": "noisy__"}
    results = run_arms("demo", data, arms, truth, args, args.seeds, subsets)
    print_table("Synthetic MER2024 demo (6 classes, weighted F1)", results, list(subsets))
    return results


@part("meiju")
def bench_meiju(args: argparse.Namespace) -> list[dict[str, Any]]:
    from mer_ensemble.data.demo import make_demo

    out = Path(args.out) / "meiju"
    src = out / "source"
    if not (src / "demo-meta.json").is_file():
        make_demo(src, layout="meiju", seed=0, dims="audio=256,text=256,video=128", overwrite=True)
    meta = json.loads((src / "demo-meta.json").read_text())
    root = out / "data"
    root.mkdir(parents=True, exist_ok=True)
    for name in ("Training_files.txt", "Validation_files.txt", "Testing_files.txt", "NoAnnotation_files.txt"):
        shutil.copy(src / name, root / name)
    features = {}
    for modality, feature in meta["features"].items():  # mean over frames: utterance-level inputs
        pooled = feature.removesuffix("-FRA") + "-UTT"
        folder = root / "features" / pooled
        if not folder.is_dir():
            folder.mkdir(parents=True)
            for path in sorted((src / "features" / feature).glob("*.npy")):
                np.save(folder / path.name, np.load(path).mean(axis=0).astype(np.float32))
        features[modality] = [pooled]
    data = {"layout": "meiju", "root": str(root), "features": features}
    arms = {
        "baseline": {},
        "interaction": {"task_interaction": True},
        "cmdm_0.3": {"cmdm_weight": 0.3, "cmdm_rampup": 5},
        "interaction+cmdm": {"task_interaction": True, "cmdm_weight": 0.3, "cmdm_rampup": 5},
    }
    truth = pd.read_csv(src / "truth.csv", dtype=str)
    results = run_arms("meiju", data, arms, truth, args, args.seeds, task="meiju2025-track1")
    print_table("Synthetic MEIJU@2025 Track 1 demo (emotion + intent, joint weighted F1)", results, ["test"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=[*PARTS, "all"], default="all")
    parser.add_argument("--out", default="/tmp/seed-bench", help="Work folder (derived data, runs, results).")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3,
                        help="Model seeds per arm (default 3).")
    args = parser.parse_args()
    os.environ.setdefault("MER_NO_PROGRESS", "1")
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPU cores; epochs {args.epochs}, folds {args.folds}")
    for name, func in PARTS.items():
        if args.part in (name, "all"):
            func(args)


if __name__ == "__main__":
    main()
