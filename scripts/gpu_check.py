"""GPU check: run the CUDA paths of mer-ensemble once, in under 5 minutes on one GPU, and print one table.

1. ``train-all`` at MER2024 scale (5,030 labelled + 20,000 pool + 1,169 test rows; 1024/5120/768-d
   features) on ``train.device: cuda`` with mixed precision (bfloat16 autocast where the GPU has
   it, else float16 with a gradient scaler), ``train.jobs: auto``, within ``--time-limit``: mlp,
   audio_text_fusion, attention_fusion and XGBoost, which on CUDA trains on the full 6,912 columns
   (``device=cuda``, no reduction);
2. XGBoost on ``device=cuda``: seconds per fold and the choices it made (from the job files);
3. ``mer-ensemble extract --fp16`` on a tiny random HuBERT checkpoint
   (:func:`mer_ensemble.extract.testing.save_tiny_checkpoint`) against the same extraction in
   float32;
4. the trainer against the MERTools-style per-sample ``DataLoader`` loop on the GPU (target >= 5x),
   with ``scripts/bench_train.py``'s measurement;
5. the ``finetune`` family on tiny random checkpoints (BERT + HuBERT, built from configs): a joint
   audio-text model fine-tuned fully and a text model through LoRA adapters with gradient
   checkpointing, both under autocast on the device, kept weights saved and loaded back (same
   probabilities), peak CUDA memory.

Without a CUDA device it prints why and exits 0 (nothing was checked); ``--require-gpu`` makes that
exit 3 instead, for machines that are meant to have one. A failed check exits 1 after the table.

    python scripts/gpu_check.py [--time-limit 120] [--out /tmp/gpu-check] [--require-gpu]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

EXIT_NO_GPU = 3

RUNS = [
    {"name": "mlp", "id": "mlp_audio", "features": ["audio"]},
    {"name": "mlp", "id": "mlp_text", "features": ["text"]},
    {"name": "audio_text_fusion", "id": "at_fusion", "features": ["audio", "text"]},
    {"name": "attention_fusion", "id": "attn_fusion"},
    {"name": "xgboost", "id": "xgb_all"},
]


class Table:
    """Rows of the one table: check, result, seconds, detail."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, float, str]] = []

    def add(self, check: str, ok: bool | None, seconds: float, detail: str) -> None:
        result = "ok" if ok else ("FAILED" if ok is False else "n/a")
        self.rows.append((check, result, seconds, detail))
        print(f"[gpu-check] {check}: {result} ({seconds:.0f}s) {detail}", flush=True)

    @property
    def failed(self) -> bool:
        return any(r[1] == "FAILED" for r in self.rows)

    def print(self, header: str) -> None:
        print(f"\n{header}\n")
        print("| check | result | seconds | detail |")
        print("|---|---|---:|---|")
        for check, result, seconds, detail in self.rows:
            print(f"| {check} | {result} | {seconds:.0f} | {detail} |")


def _env() -> dict[str, str]:
    return {**os.environ, "MER_NO_PROGRESS": "1", "PYTHONPATH": str(REPO)}


def check_train_all(out: Path, args: argparse.Namespace, table: Table) -> None:
    """train-all at MER2024 scale on CUDA within the time limit; one row per run."""
    import yaml

    from mer_ensemble.data.demo import make_demo
    from mer_ensemble.store import load_runs
    from mer_ensemble.training.runner import load_status

    start = time.perf_counter()
    data = out / "data"
    if not data.is_dir():
        make_demo(data, layout="mer2024", n_train=args.n, n_pool=args.n_pool, n_test=args.n_test,
                  dims={"audio": 1024, "text": 5120, "video": 768}, seed=0)
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["data"]["root"] = str(data)
    cfg.pop("truth", None)
    cfg["cv"] = {"folds": 5, "seeds": [0]}
    cfg["train"] = {"device": args.device, "jobs": "auto"}
    cfg["models"] = RUNS
    config = out / "scale.yaml"
    config.write_text(yaml.safe_dump(cfg))
    made = time.perf_counter() - start
    workdir = out / "wd"
    cmd = [sys.executable, "-m", "mer_ensemble", "train-all", "-c", str(config), "--workdir", str(workdir),
           "--time-limit", f"{args.time_limit}s"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        table.add(f"train-all MER2024 scale, {args.device} + amp", False, wall, last)
        return
    status = load_status(workdir) or {}
    records = {r.key: r for r in load_runs(workdir)}
    finished = sum(v["status"] == "done" for v in status.get("runs", {}).values())
    within = wall <= args.time_limit + 30
    table.add(f"train-all MER2024 scale, {args.device} + amp", within, wall,
              f"data written in {made:.0f}s; {finished}/{len(RUNS)} runs finished within --time-limit "
              f"{args.time_limit}s ({status.get('slots', '')})")
    for run in RUNS:
        key = run["id"]
        info = status.get("runs", {}).get(key, {})
        if key in records:
            m = records[key].manifest
            table.add(f"  {key} ({run['name']})", True, m["fit_seconds"],
                      f"CV {m['combined']['mean']:.4f} ± {m['combined']['sd']:.4f}, {info.get('status', '?')}")
        else:
            table.add(f"  {key} ({run['name']})", None, 0.0,
                      f"{info.get('status', 'not run')}: {'; '.join(info.get('why', {}).values())}")
    check_xgb_jobs(workdir, table, args.device, expected_columns=6912 if args.device == "cuda" else None)


def check_xgb_jobs(workdir: Path, table: Table, device: str, expected_columns: int | None) -> None:
    """XGBoost on device=cuda: per-fold seconds and choices, from the job files."""
    files = sorted((workdir / "jobs" / "xgb_all").glob("*/*.npz"))
    if not files:
        table.add(f"xgboost device={device}", None, 0.0, "no fold finished within the time limit")
        return
    seconds, chosen = [], []
    for path in files:
        with np.load(path) as job:
            seconds.append(float(job["fit_seconds"]))
            chosen.append(json.loads(str(job["selected"])))
    columns = sorted({c.get("columns") for c in chosen})
    ok = columns == [expected_columns] if expected_columns else bool(columns)
    table.add(f"xgboost device={device}", ok, float(np.mean(seconds)),
              f"{len(files)} fold(s), {np.mean(seconds):.1f}s per fold, columns {columns}, "
              f"depth {[c.get('max_depth') for c in chosen]}, rounds {[c.get('rounds') for c in chosen]}")


def check_extract_fp16(out: Path, table: Table, device: str) -> None:
    """extract --fp16 on CUDA (tiny HuBERT) against float32 on CUDA."""
    import soundfile as sf

    from mer_ensemble.extract.testing import save_tiny_checkpoint

    start = time.perf_counter()
    ckpt = save_tiny_checkpoint("hubert", out / "tiny-hubert", layers=4)
    wav = out / "wav"
    wav.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(24):
        seconds = 1.0 + (i % 5) * 0.5
        sf.write(wav / f"utt{i:03d}.wav", (0.1 * rng.normal(size=int(16000 * seconds))).astype(np.float32), 16000)
    results = {}
    if device == "cpu":  # --fp16 needs CUDA; the dry run checks the float32 path only
        precisions: tuple[str, ...] = ("--no-fp16",)
    else:
        precisions = ("--fp16", "--no-fp16")
    for precision in precisions:
        dest = out / f"hubert{precision.replace('-', '_')}-UTT"
        cmd = [sys.executable, "-m", "mer_ensemble", "extract", "--modality", "audio", "--model", str(ckpt),
               "--input", str(wav), "--out", str(dest), "--device", device, precision, "--no-progress"]
        proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            table.add(f"extract {precision} ({device})", False, time.perf_counter() - start,
                      proc.stderr.strip().splitlines()[-1][:300])
            return
        results[precision] = np.stack([np.load(p) for p in sorted(dest.glob("*.npy"))])
    if device == "cpu":
        full = results["--no-fp16"]
        table.add("extract --no-fp16 (cpu, tiny HuBERT)", None, time.perf_counter() - start,
                  f"{len(full)} items {full.shape[1:]}; --fp16 needs CUDA")
        return
    half, full = results["--fp16"], results["--no-fp16"]
    rel = float(np.abs(half - full).max() / (np.abs(full).max() + 1e-12))
    ok = bool(np.isfinite(half).all() and half.shape == full.shape and rel < 0.05)
    table.add(f"extract --fp16 ({device}, tiny HuBERT)", ok, time.perf_counter() - start,
              f"{len(half)} items {half.shape[1:]}, max |fp16 - fp32| / max |fp32| = {rel:.2e}")


def check_trainer(table: Table, device: str) -> None:
    """The trainer against the per-sample DataLoader loop on CUDA (bench_train's measurement)."""
    import bench_train

    start = time.perf_counter()
    args = bench_train.parse_args(["--part", "trainer", "--device", device, "--amp", "--epochs", "2", "--repeats", "2",
                                   "--clock", "wall", "--threads", str(os.cpu_count() or 1)])
    rates = bench_train.measure_trainer(args)
    ratio = rates["trainer"] / rates["dataloader (MERTools-style)"]
    detail = ", ".join(f"{k} {v:,.0f}/s" for k, v in rates.items())
    table.add(f"trainer vs per-sample DataLoader ({device})", ratio >= 5, time.perf_counter() - start,
              f"{ratio:.1f}x (target >= 5x); {detail}")


def check_finetune(out: Path, table: Table, device: str) -> None:
    """The finetune family on the device: joint full fine-tuning, LoRA + gradient checkpointing, save/load."""
    import soundfile as sf
    import torch

    from mer_ensemble.extract.testing import save_tiny_checkpoint
    from mer_ensemble.models import create_model, get_model_class

    start = time.perf_counter()
    bert = save_tiny_checkpoint("bert", out / "ft-bert", 2)
    hubert = save_tiny_checkpoint("hubert", out / "ft-hubert", 2)
    rng = np.random.default_rng(0)
    folder = out / "ft-wav"
    folder.mkdir(exist_ok=True)
    n = 64
    labels = np.arange(n) % 3
    paths = []
    for i in range(n):
        t = np.arange(int(16000 * rng.uniform(0.5, 2.0))) / 16000
        sf.write(folder / f"u{i}.wav", (0.5 * np.sin(2 * np.pi * (200, 800, 3200)[labels[i]] * t)).astype(np.float32),
                 16000)
        paths.append(str(folder / f"u{i}.wav"))
    texts = np.array([("happy day", "sad night", "angry words")[k] + " the go" for k in labels], dtype=object)
    X = {"raw:text": texts, "raw:audio": np.array(paths, dtype=object)}
    y = {"emotion": labels.astype(np.int64), "sentiment": (labels > 0).astype(np.int64)}
    targets = {"emotion": 3, "sentiment": 2}
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    arms = {"joint, full": {"modality": "joint", "checkpoint": {"text": str(bert), "audio": str(hubert)}},
            "text, LoRA + checkpointing": {"checkpoint": str(bert), "lora": True, "gradient_checkpointing": True}}
    for arm, params in arms.items():
        t0 = time.perf_counter()
        model = create_model("finetune", targets=targets, feature_dims={}, modalities={}, device=device,
                             epochs=3, val_fraction=0, lr=3e-3, head_lr=3e-3, keep_weights=True, **params)
        inputs = {k: v for k, v in X.items() if k.removeprefix("raw:") in model.raw_inputs}
        model.fit(inputs, y)
        proba = model.predict_proba(inputs)
        on = {p.device.type for p in model.engine_.net.parameters()}
        path = out / f"ft-{len(arm)}.safetensors"
        model.save(str(path))
        again = get_model_class("finetune").load(str(path), device=device).predict_proba(inputs)
        same = float(np.abs(again["emotion"] - proba["emotion"]).max())
        finite = all(np.isfinite(p).all() for p in proba.values())
        ok = finite and on == {device} and same < 1e-4
        table.add(f"finetune {arm} ({device})", ok, time.perf_counter() - t0,
                  f"{n} rows x 3 epochs on {sorted(on)}, trainable {model.selected_['trainable_params']:,}, "
                  f"reload max |dp| {same:.1e}")
    if device == "cuda":
        table.add("finetune peak CUDA memory", None, time.perf_counter() - start,
                  f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds for the train-all check")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one, removed at the end)")
    parser.add_argument("--require-gpu", action="store_true", help=f"exit {EXIT_NO_GPU} when there is no CUDA device")
    parser.add_argument("--n", type=int, default=5030)
    parser.add_argument("--n-pool", type=int, default=20000)
    parser.add_argument("--n-test", type=int, default=1169)
    parser.add_argument("--device", default="cuda",
                        help="cuda; cpu runs the same checks on the CPU (a dry run of this script, small --n advised)")
    parser.add_argument("--skip", default="", help="comma-separated checks to skip: train,extract,trainer,finetune")
    args = parser.parse_args(argv)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device visible to torch {torch.__version__} "
              f"(built with CUDA {torch.version.cuda or 'none'}); nothing was checked.")
        return EXIT_NO_GPU if args.require_gpu else 0
    from mer_ensemble.nn.device import amp_dtype

    if args.device == "cuda":
        header = (f"GPU check on {torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} visible), torch "
                  f"{torch.__version__}, CUDA {torch.version.cuda}, autocast {amp_dtype('cuda')}, "
                  f"{os.cpu_count()} CPU cores")
    else:
        header = f"dry run of the GPU check on the CPU, torch {torch.__version__}, {os.cpu_count()} CPU cores"
    print(header, flush=True)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="gpu-check-"))
    out.mkdir(parents=True, exist_ok=True)
    table = Table()
    skip = set(filter(None, args.skip.split(",")))
    start = time.perf_counter()
    try:
        for name, check in (("trainer", lambda: check_trainer(table, args.device)),
                            ("extract", lambda: check_extract_fp16(out, table, args.device)),
                            ("finetune", lambda: check_finetune(out, table, args.device)),
                            ("train", lambda: check_train_all(out, args, table))):
            if name in skip:
                continue
            try:
                check()
            except Exception as exc:  # noqa: BLE001 - every check reports, the table always prints
                table.add(name, False, 0.0, f"{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    table.print(f"{header}; total {time.perf_counter() - start:.0f}s")
    return 1 if table.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
