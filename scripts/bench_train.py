"""Training benchmarks, printed as tables (results go to docs/benchmarks.md).

Part ``trainer`` (issue 3): throughput in samples/s of :class:`mer_ensemble.nn.trainer.Trainer`
against, on the same network and data in the same run,

* ``hand-written``: the shortest correct torch loop (tensors on the device, randperm, index,
  forward, cross-entropy, backward, step);
* ``dataloader``: the MER2024 baseline's loop (MERTools): a per-sample
  ``torch.utils.data.Dataset`` whose ``__getitem__`` builds one tensor per modality,
  a shuffling ``DataLoader`` (batch 32, default collate), the batch moved to the device,
  and per batch ``loss.item()`` plus the outputs copied to the host for bookkeeping.

The network is the MER2024 baseline attention fusion over three utterance-level
modalities. Each method trains ``--epochs`` epochs after one warm-up epoch; the best of
``--repeats`` interleaved rounds is kept (the machine may be shared). On the CPU with one
thread the process CPU clock is used, so that other jobs on the machine do not count.

    python scripts/bench_train.py --part trainer --threads 1
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import Parts  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PARTS = Parts()
part = PARTS


# ---------------------------------------------------------------------------------------------
# part "trainer"


def make_problem(n: int, dims: Sequence[int], n_classes: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Random utterance features ``m0..`` ``(n, D_i)`` float32 and labels ``(n,)`` int64."""
    rng = np.random.default_rng(seed)
    features = {f"m{i}": rng.normal(size=(n, d)).astype(np.float32) for i, d in enumerate(dims)}
    return features, rng.integers(0, n_classes, n).astype(np.int64)


def build_net(dims: Sequence[int], hidden: int, n_classes: int, seed: int) -> Any:
    """The MER2024 baseline attention fusion over ``len(dims)`` utterance-level modalities."""
    import torch

    from mer_ensemble.models.nets.attention_fusion import AttentionFusionNet

    torch.manual_seed(seed)
    modalities = [(f"m{i}", d, "utt") for i, d in enumerate(dims)]
    return AttentionFusionNet(modalities, hidden, 0.3, [("y", n_classes)])


def run_trainer(net: Any, features: dict, labels: np.ndarray, epochs: int, args: argparse.Namespace) -> None:
    """mer-ensemble's Trainer, no validation rows (fixed number of epochs)."""
    from mer_ensemble.nn import Trainer

    trainer = Trainer(
        lr=1e-3,
        weight_decay=1e-5,
        batch_size=args.batch_size,
        max_epochs=epochs,
        patience=None,
        device=args.device,
        amp=args.amp,
    )
    trainer.fit(net, features, {"y": labels})


def run_handwritten(
    net: Any, features: dict, labels: np.ndarray, epochs: int, args: argparse.Namespace, fused: bool = False
) -> None:
    """The shortest correct loop over the same network: whole tensors on the device, index per batch
    (``fused``: with torch's fused Adam, as the Trainer uses where available)."""
    import torch
    import torch.nn.functional as F

    from mer_ensemble.nn import resolve_device

    device = resolve_device(args.device)
    net.to(device).train()
    x = {k: torch.from_numpy(v).to(device) for k, v in features.items()}
    y = torch.from_numpy(labels).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-5, **({"fused": True} if fused else {}))
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator).to(device)
        for start in range(0, len(y), args.batch_size):
            index = order[start : start + args.batch_size]
            loss = F.cross_entropy(net({k: v[index] for k, v in x.items()})["y"], y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_dataloader(net: Any, features: dict, labels: np.ndarray, epochs: int, args: argparse.Namespace) -> None:
    """The MERTools-style loop: per-sample Dataset, DataLoader collate, per-batch bookkeeping."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, Dataset

    from mer_ensemble.nn import resolve_device

    names = list(features)

    class PerSample(Dataset):
        def __len__(self) -> int:
            return len(labels)

        def __getitem__(self, index: int) -> tuple:
            return (*[torch.FloatTensor(features[k][index]) for k in names], labels[index])

    device = resolve_device(args.device)
    net.to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-5)
    loader = DataLoader(PerSample(), batch_size=args.batch_size, shuffle=True, num_workers=0)
    for _ in range(epochs):
        losses, probs = [], []
        for batch in loader:
            inputs = {k: v.to(device) for k, v in zip(names, batch[:-1], strict=True)}
            target = batch[-1].to(device)
            logits = net(inputs)["y"]
            loss = F.cross_entropy(logits, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            probs.append(logits.detach().cpu().numpy())


METHODS: dict[str, Callable[..., None]] = {
    "trainer": run_trainer,
    "hand-written": run_handwritten,
    "hand-written, fused Adam": functools.partial(run_handwritten, fused=True),
    "dataloader (MERTools-style)": run_dataloader,
}


def time_method(name: str, args: argparse.Namespace, features: dict, labels: np.ndarray) -> float:
    """Seconds for ``args.epochs`` epochs of method ``name`` (after one warm-up epoch), on the
    process CPU clock (``args.clock == "cpu"``: robust to other jobs on a shared machine when
    torch uses one thread) or the wall clock."""
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    net = build_net(args.dims, args.hidden, args.classes, seed=0)
    METHODS[name](net, features, labels, 1, args)
    net = build_net(args.dims, args.hidden, args.classes, seed=0)
    start = clock()
    METHODS[name](net, features, labels, args.epochs, args)
    return clock() - start


def measure_trainer(args: argparse.Namespace) -> dict[str, float]:
    """Best samples/s of each method over ``args.repeats`` interleaved rounds."""
    import torch

    torch.set_num_threads(args.threads)
    features, labels = make_problem(args.n, args.dims, args.classes, seed=0)
    best = dict.fromkeys(METHODS, float("inf"))
    for _ in range(args.repeats):
        for name in METHODS:
            best[name] = min(best[name], time_method(name, args, features, labels))
    return {name: args.n * args.epochs / seconds for name, seconds in best.items()}


def trainer_table(throughput: dict[str, float]) -> str:
    """Markdown table of samples/s and the Trainer's speed relative to each method."""
    ours = throughput["trainer"]
    lines = ["| loop | samples/s | trainer speed / this loop |", "|---|---:|---:|"]
    for name, value in throughput.items():
        lines.append(f"| {name} | {value:,.0f} | {ours / value:.2f}x |")
    return "\n".join(lines)


@part("trainer")
def bench_trainer(args: argparse.Namespace) -> None:
    """Trainer throughput vs a hand-written loop and a per-sample DataLoader loop."""
    import torch

    from mer_ensemble.nn import resolve_device

    device = resolve_device(args.device)
    if args.clock is None:
        args.clock = "cpu" if device.type == "cpu" and args.threads == 1 else "wall"
    throughput = measure_trainer(args)
    print(
        f"# trainer throughput: device={device}, torch {torch.__version__}, threads={args.threads}, "
        f"clock={args.clock}, "
        f"n={args.n}, dims={list(args.dims)}, hidden={args.hidden}, batch={args.batch_size}, "
        f"epochs={args.epochs} (+1 warm-up), best of {args.repeats}, trainer amp={args.amp}"
    )
    print(trainer_table(throughput))
    print(f"trainer / hand-written = {throughput['trainer'] / throughput['hand-written']:.2f} (target >= 0.8)")
    dataloader = throughput["dataloader (MERTools-style)"]
    print(f"trainer / dataloader   = {throughput['trainer'] / dataloader:.2f} (target >= 5)")


# ---------------------------------------------------------------------------------------------
# command line


FAMILY_RUNS = {
    "linear": {"name": "linear", "id": "linear_all"},
    "xgboost": {"name": "xgboost", "id": "xgb_all"},
    "mlp": {"name": "mlp", "id": "mlp_audio", "features": ["audio"]},
    "audio_text_fusion": {"name": "audio_text_fusion", "id": "at_fusion", "features": ["audio", "text"]},
    "attention_fusion": {"name": "attention_fusion", "id": "attn_fusion"},
}


def _matmul_gflops(threads: int) -> float:
    """The machine's own float32 matmul rate with ``threads`` torch threads (best of 5)."""
    from mer_ensemble.training.budget import machine_gflops

    return machine_gflops(threads, size=1024, repeats=10, rounds=5)


def _run_family(config: Path, workdir: Path, run_id: str) -> tuple[float, float]:
    """train-all of one run in a fresh process; returns (wall seconds, peak RSS GiB of that process)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "MER_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "mer_ensemble", "train-all", "-c", str(config), "--workdir", str(workdir),
           "--models", run_id]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"train-all of {run_id} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024**2


def _achieved_gflops(workdir: Path, run_id: str) -> float | None:
    """Training GFLOP/s of a torch run from its job files: 6 x params x rows x epochs / fit seconds."""
    flops = seconds = 0.0
    for path in (workdir / "jobs" / run_id).glob("*/*.npz"):
        with np.load(path) as job:
            if "n_params" not in job.files:
                return None
            flops += 6.0 * float(job["n_params"]) * float(job["n_train"]) * float(job["epochs_run"])
            seconds += float(job["fit_seconds"])
    return flops / seconds / 1e9 if seconds else None


@part("scale")
def bench_scale(args: argparse.Namespace) -> None:
    """train-all of one run per family at MER2024 scale; wall time, peak memory, achieved GFLOP/s."""
    import shutil
    import tempfile

    import yaml

    from mer_ensemble.data.demo import make_demo

    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        dims = {"audio": args.dims[0], "text": args.dims[1], "video": args.dims[2]}
        data = make_demo(root / "data", layout="mer2024", n_train=args.n, n_pool=args.n_pool, n_test=args.n_test,
                         dims=dims, seed=0)
        cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
        cfg["data"]["root"] = str(data)
        cfg["cv"] = {"folds": args.folds, "seeds": [0]}
        cfg["train"] = {"threads": args.threads}
        families = args.families.split(",") if args.families else list(FAMILY_RUNS)
        cfg["models"] = [FAMILY_RUNS[f] for f in families]
        config = root / "scale.yaml"
        config.write_text(yaml.safe_dump(cfg))
        workdir = root / "wd"
        from mer_ensemble.config import load_config
        from mer_ensemble.data import load_dataset
        from mer_ensemble.experiment import data_settings

        start = time.perf_counter()
        load_dataset(data_settings(load_config(config)), workdir)
        print(f"data: {args.n} labelled + {args.n_pool} pool + {args.n_test} test rows, dims {args.dims}; "
              f"first load + cache {time.perf_counter() - start:.1f}s", flush=True)
        peak_matmul = _matmul_gflops(args.threads)
        print("| family | run | wall s (5 folds) | peak RSS GiB | achieved GFLOP/s | vs matmul |")
        print("|---|---|---:|---:|---:|---:|")
        for family in families:
            run_id = FAMILY_RUNS[family]["id"]
            wall, rss = _run_family(config, workdir, run_id)
            gflops = _achieved_gflops(workdir, run_id)
            rate = f"{gflops:.1f}" if gflops else "—"
            ratio = f"{gflops / peak_matmul:.2f}" if gflops else "—"
            print(f"| {family} | {run_id} | {wall:.0f} | {rss:.2f} | {rate} | {ratio} |", flush=True)
        print(f"\nmachine float32 matmul (1024^3, {args.threads} thread(s)): {peak_matmul:.1f} GFLOP/s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@part("real")
def bench_real(args: argparse.Namespace) -> None:
    """CV and test score of every registered run on the shared emodb and meld data."""
    import os
    import subprocess
    import sys

    from mer_ensemble.config import load_config
    from mer_ensemble.data import load_dataset
    from mer_ensemble.experiment import data_settings
    from mer_ensemble.store import load_runs
    from mer_ensemble.submission import read_truth

    for name in args.datasets.split(","):
        config = REPO / "configs" / f"{name}.yaml"
        cfg = load_config(config)
        if not cfg.resolve_path(cfg.data.root).is_dir():
            print(f"{name}: shared data not present, skipped")
            continue
        workdir = Path(args.workdir) / name
        env = {**os.environ, "MER_NO_PROGRESS": "1"}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mer_ensemble", "train-all", "-c", str(config), "--workdir",
                        str(workdir)], env=env, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        ds = load_dataset(data_settings(cfg), workdir)
        truth, names = read_truth(cfg.resolve_path(cfg.truth["test"]), ds.task)
        order = {n: i for i, n in enumerate(names)}
        idx = np.array([order[n] for n in ds.names[ds.test_rows]])
        targets = ds.task.target_names
        print(f"\n{name} (train-all {wall:.0f}s; CV = mean ± sd over {cfg.cv.folds} grouped folds; test = truth file)")
        print("| run | model | features | " + " | ".join(f"CV {t}" for t in targets) + " | "
              + " | ".join(f"test {t}" for t in targets) + (" | test joint |" if len(targets) > 1 else " |")
              + " seconds |")
        print("|---|---|---|" + "---:|" * (2 * len(targets) + (1 if len(targets) > 1 else 0)) + "---:|")
        for rec in sorted(load_runs(workdir), key=lambda r: -r.manifest["combined"]["mean"]):
            m = rec.manifest
            cv = [f"{m['cv'][t]['mean']:.4f} ± {m['cv'][t]['sd']:.4f}" for t in targets]
            test = {t: ds.task.target(t).score(truth[t][idx], rec.test[t].argmax(1)) for t in targets}
            joint = f" | {ds.task.combined(test):.4f}" if len(targets) > 1 else ""
            print(f"| {m['key']} | {m['model']} | {','.join(m['features'])} | " + " | ".join(cv) + " | "
                  + " | ".join(f"{test[t]:.4f}" for t in targets) + joint + f" | {m['fit_seconds']:.0f} |",
                  flush=True)


# ---------------------------------------------------------------------------------------------
# part "throughput" (issue 15): torch fits at MER2024 scale, this tree against an older commit

THROUGHPUT_RUNS = {
    "mlp (audio, 1024-d)": ("mlp", ["audio"]),
    "mlp (text, 5120-d)": ("mlp", ["text"]),
    "audio_text_fusion": ("audio_text_fusion", ["audio", "text"]),
    "attention_fusion (3 modalities)": ("attention_fusion", ["audio", "text", "video"]),
}

# Runs in a fresh interpreter with PYTHONPATH at the tree under test: fits folds 0 and 1 of one
# run (one thread) and prints JSON. Process CPU time, so other jobs on a shared machine count
# as little as possible; the matmul rate is measured the same way before and after the fits.
_FIT_SCRIPT = r"""
import hashlib, json, sys, time
import numpy as np, torch
from threadpoolctl import threadpool_limits
torch.set_num_threads(1)
from mer_ensemble.config import load_config
from mer_ensemble.experiment import Experiment
from mer_ensemble.models import create_model, model_defaults
from mer_ensemble.training.jobs import build_inputs
# one configuration, no refit: the training both trees share (newer trees can also try candidates)
SAME = {k: v for k, v in {"candidates": [{}], "refit": False}.items() if k in model_defaults(sys.argv[3])}
config, workdir, family, modalities = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
def matmul():
    a = torch.randn(1024, 1024); a @ a; best = float("inf")
    for _ in range(5):
        t = time.process_time()
        for _ in range(8): a @ a
        best = min(best, time.process_time() - t)
    return 8 * 2 * 1024 ** 3 / best / 1e9
with threadpool_limits(1):
    start = time.process_time()
    exp = Experiment.open(load_config(config), workdir)
    ds = exp.dataset
    feats = [f for f in ds.features if ds.features[f].modality in modalities]
    peak = [matmul()]
    out = {"fits": [], "startup": 0.0}
    for fold in (0, 1):
        train, valid = exp.folds.split(fold)
        X = build_inputs(ds, feats, train, "utt", 64)
        model = create_model(family, targets={"discrete": 6}, feature_dims={f: ds.features[f].dim for f in feats},
                             modalities={f: ds.features[f].modality for f in feats}, seed=fold, device="cpu",
                             **SAME)
        t = time.process_time()
        model.fit(X, {"discrete": ds.labels["discrete"][train]})
        seconds = time.process_time() - t
        proba = model.predict_proba(build_inputs(ds, feats, valid, "utt", 64))["discrete"]
        out["fits"].append({"seconds": seconds, "epochs": model.fit_result_.epochs_run, "n_train": len(train),
                            "params": sum(p.numel() for p in model.module_.parameters()),
                            "proba": hashlib.sha1(np.ascontiguousarray(proba).tobytes()).hexdigest()})
    peak.append(matmul())
    out["peak"] = max(peak)
    out["total"] = time.process_time() - start
print("RESULT " + json.dumps(out))
"""


def _fit_in(tree: Path, config: Path, workdir: Path, family: str, modalities: list[str]) -> dict:
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MER_NO_PROGRESS": "1"}
    proc = subprocess.run([sys.executable, "-c", _FIT_SCRIPT, str(config), str(workdir), family, ",".join(modalities)],
                          env=env, capture_output=True, text=True, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"fit in {tree} failed: {proc.stderr[-2000:]}")
    return json.loads(line[len("RESULT "):])


@part("throughput")
def bench_throughput(args: argparse.Namespace) -> None:
    """Torch fits at MER2024 scale: this tree against ``--compare`` (a commit), one run, per family."""
    import shutil
    import subprocess
    import tempfile

    import yaml

    from mer_ensemble.data.demo import make_demo

    root = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    try:
        old = root / "old"
        old.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.compare], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        data = Path(args.data) if args.data else make_demo(
            root / "data", layout="mer2024", n_train=args.n, n_pool=args.n_pool, n_test=args.n_test,
            dims={"audio": args.dims[0], "text": args.dims[1], "video": args.dims[2]}, seed=0)
        cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
        cfg["data"]["root"] = str(data)
        cfg.pop("truth", None)
        cfg["cv"] = {"folds": args.folds, "seeds": [0]}
        config = root / "scale.yaml"
        config.write_text(yaml.safe_dump(cfg))
        from mer_ensemble.config import load_config
        from mer_ensemble.data import load_dataset
        from mer_ensemble.experiment import data_settings

        load_dataset(data_settings(load_config(config)), root / "wd")  # the feature cache, shared by both trees
        rows = []
        for label, (family, modalities) in THROUGHPUT_RUNS.items():
            results = {"old": [], "new": []}
            for _ in range(args.repeats):
                for which, tree in (("old", old), ("new", REPO)):
                    results[which].append(_fit_in(tree, config, root / "wd", family, modalities))
            rows.append((label, results))
            _print_throughput(rows, args.compare)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _print_throughput(rows: list, compare: str) -> None:
    """One markdown table: per run, CPU seconds of the first fit in a process (imports and other
    one-off costs included) and of a later fit, achieved GFLOP/s of the later fit and its share of
    the matmul rate measured in the same process (best of ``--repeats`` for each tree)."""
    print(f"\n| run | weights | epochs | first fit s: {compare} → this tree | later fit s: {compare} → this tree | "
          f"later fit GFLOP/s (share of matmul): {compare} → this tree | same predictions |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for label, results in rows:
        cells = {}
        for which, runs in results.items():
            first = min(r["fits"][0]["seconds"] for r in runs)
            later = min(runs, key=lambda r: r["fits"][1]["seconds"])["fits"][1]
            peak = max(r["peak"] for r in runs)
            rate = 6.0 * later["params"] * later["n_train"] * later["epochs"] / later["seconds"] / 1e9
            cells[which] = (first, later["seconds"], rate, peak, runs[0]["fits"])
        (fo, lo, ro, po, fits_o), (fn, ln, rn, pn, fits_n) = cells["old"], cells["new"]
        same = all(a["proba"] == b["proba"] for a, b in zip(fits_o, fits_n, strict=True))
        print(f"| {label} | {fits_n[0]['params']:,} | {', '.join(str(f['epochs']) for f in fits_n)} | "
              f"{fo:.1f} → {fn:.1f} | {lo:.1f} → {ln:.1f} | {ro:.1f} ({ro / po:.2f}) → {rn:.1f} ({rn / pn:.2f}) | "
              f"{'yes' if same else 'NO'} |", flush=True)


# ---------------------------------------------------------------------------------------------
# part "xgb" (issue 15): XGBoost at full width against the reduced inputs


XGB_VARIANTS = {
    "full width, depth 4 (before)": {"reduce": "none", "max_depth": 4},
    "PCA 64 per modality, depth 4": {"reduce": "pca", "max_depth": 4},
    "default (reduce auto, depth 3 or 6)": {},
}


def _xgb_datasets(out: Path) -> dict[str, tuple[dict, list[str] | None]]:
    """name -> (config dict, features of the xgboost run): the demo layouts (written under
    ``out``) and the shared real data when present."""
    import os

    import yaml

    from mer_ensemble.data.demo import make_demo

    sets: dict[str, tuple[dict, list[str] | None]] = {}
    for name, layout, config in (("MER2024 demo", "mer2024", "demo.yaml"), ("MEIJU demo", "meiju", "demo-meiju.yaml")):
        root = out / f"data-{layout}"
        if not root.is_dir():
            make_demo(root, layout=layout, seed=0)
        cfg = yaml.safe_load((REPO / "configs" / config).read_text())
        cfg["data"]["root"] = str(root)
        cfg.pop("truth", None)
        cfg["truth"] = {"test": str(root / ("truth-test.csv" if layout == "mer2024" else "truth.csv"))}
        sets[name] = (cfg, None)
    shared = Path(os.environ.get("MER_SHARED_DATA", REPO.parent / "shared" / "data"))
    for name, config, features in (("EmoDB", "emodb.yaml", None), ("MELD", "meld.yaml", None)):
        cfg = yaml.safe_load((REPO / "configs" / config).read_text())
        source = REPO / "configs" / config
        root = (source.parent / cfg["data"]["root"]).resolve()
        if not root.is_dir() or not (shared / root.name).is_dir():
            print(f"{name}: shared data not present, skipped")
            continue
        cfg["data"]["root"] = str(root)
        cfg["truth"] = {k: str((source.parent / v).resolve()) for k, v in cfg.get("truth", {}).items()}
        sets[name] = (cfg, features)
    return sets


@part("xgb")
def bench_xgb(args: argparse.Namespace) -> None:
    """CV and test score and fit time of XGBoost at full width vs reduced inputs, per dataset."""
    import yaml

    from mer_ensemble.config import load_config
    from mer_ensemble.experiment import Experiment
    from mer_ensemble.metrics import combine_scores
    from mer_ensemble.submission import read_truth
    from mer_ensemble.training.runner import train_all

    out = Path(args.workdir)
    out.mkdir(parents=True, exist_ok=True)
    wanted = None if args.sets == "all" else set(args.sets.split(","))
    for name, (cfg, features) in _xgb_datasets(out).items():
        if wanted and name not in wanted:
            continue
        cfg = dict(cfg)
        cfg["cv"] = {"folds": args.folds, "seeds": [0]}
        cfg["train"] = {"threads": args.threads, "jobs": 1, "device": "cpu"}
        cfg["models"] = [{"name": "xgboost", "id": f"v{i}", "params": params, **({"features": features} if features
                          else {})} for i, params in enumerate(XGB_VARIANTS.values())]
        path = out / f"{name.replace(' ', '-')}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        config = load_config(path)
        exp = Experiment.open(config, out / f"wd-{name.replace(' ', '-')}")
        width = sum(exp.dataset.features[f].dim for f in exp.dataset.features)
        start = time.perf_counter()
        records = {r.key: r for r in train_all(exp, progress=False)}
        truth, names = read_truth(config.resolve_path(config.truth["test"]), exp.task)
        order = {n: i for i, n in enumerate(names)}
        idx = np.array([order[n] for n in exp.dataset.names[exp.dataset.test_rows]])
        print(f"\n### {name}: {len(exp.folds.rows)} labelled rows, {width} columns, targets "
              f"{exp.task.target_names} ({time.perf_counter() - start:.0f}s)\n")
        print("| variant | columns | depth chosen | CV (mean ± sd over folds) | Δ CV | folds better | test | fit s |")
        print("|---|---:|---|---:|---:|---:|---:|---:|")
        base = None
        for i, label in enumerate(XGB_VARIANTS):
            rec = records[f"v{i}"]
            m = rec.manifest
            folds = [combine_scores([m["cv"][t]["folds"][k] for t in rec.targets], exp.task.combine)
                     for k in range(args.folds)]
            test = exp.task.combined({t: exp.task.target(t).score(truth[t][idx], rec.test[t].argmax(1))
                                      for t in rec.targets})
            chosen = sorted({str(d) for sel in m["selected"].values() for d in (sel.get("max_depth") or {}).values()})
            columns = sorted({sel.get("columns") for sel in m["selected"].values()})
            base = base or folds
            delta = np.mean(folds) - np.mean(base)
            better = sum(a > b for a, b in zip(folds, base, strict=True))
            print(f"| {label} | {'/'.join(map(str, columns))} | {','.join(chosen) or '—'} | "
                  f"{m['combined']['mean']:.4f} ± {m['combined']['sd']:.4f} | {delta:+.4f} | {better}/{args.folds} | "
                  f"{test:.4f} | {m['fit_seconds']:.0f} |", flush=True)


#: the settings ``--part parallel`` compares: (label, --jobs, train.threads)
PARALLEL_SETTINGS = [("auto (default)", "auto", None), ("1 job x 1 thread", "1", 1), ("2 jobs x 1 thread", "2", 1),
                     ("1 job x 2 threads", "1", 2)]


def _train_all_wall(config: Path, workdir: Path, jobs: str, threads: int | None, models: str | None) -> float:
    """Wall seconds of one ``train-all`` in a fresh process (raises on failure)."""
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "mer_ensemble", "train-all", "-c", str(config), "--workdir", str(workdir),
           "--jobs", jobs]
    if threads:
        cmd += ["--set", f"train.threads={threads}"]
    if models:
        cmd += ["--models", models]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env={**os.environ, "MER_NO_PROGRESS": "1"}, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    return time.perf_counter() - start


@part("parallel")
def bench_parallel(args: argparse.Namespace) -> None:
    """``train.jobs: auto`` against hand-picked jobs x threads, on the demo and at MER2024 scale."""
    import shutil
    import subprocess
    import sys
    import tempfile

    import yaml

    from mer_ensemble.config import load_config
    from mer_ensemble.data import load_dataset
    from mer_ensemble.data.demo import make_demo
    from mer_ensemble.experiment import data_settings

    root = Path(tempfile.mkdtemp(prefix="bench-parallel-"))
    try:
        wanted = args.sets.split(",") if args.sets != "all" else ["demo", "scale"]
        sets = {}
        if "demo" in wanted:
            sets["demo (1,200 labelled rows, the demo config's 7 runs)"] = (
                make_demo(root / "demo", layout="mer2024", seed=0), None)
        if "scale" in wanted:
            label = (f"MER2024 scale ({args.n:,} labelled + {args.n_pool:,} pool + {args.n_test:,} test; "
                     f"{args.scale_models})")
            sets[label] = (Path(args.data) if args.data else make_demo(
                root / "scale", layout="mer2024", n_train=args.n, n_pool=args.n_pool, n_test=args.n_test,
                dims={"audio": args.dims[0], "text": args.dims[1], "video": args.dims[2]}, seed=0), args.scale_models)
        print("| data | setting | wall s | vs best hand-picked |")
        print("|---|---|---:|---:|")
        for label, (data, models) in sets.items():
            cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
            cfg["data"]["root"] = str(data)
            cfg.pop("truth", None)
            cfg.pop("train", None)
            cfg["cv"] = {"folds": args.folds, "seeds": [0]}
            config = root / "bench.yaml"
            config.write_text(yaml.safe_dump(cfg))
            cache = root / "cache-wd"
            load_dataset(data_settings(load_config(config)), cache)  # the feature cache every setting starts from
            walls = {}
            # untimed warm-up train-all (one cheap run): the first timed setting otherwise pays for a cold
            # start (measured ~20% on the demo), whichever setting it is
            warm = root / "warm"
            shutil.rmtree(warm, ignore_errors=True)
            shutil.copytree(cache, warm)
            _train_all_wall(config, warm, "2", None, "linear_audio")
            for name, jobs, threads in PARALLEL_SETTINGS:
                workdir = root / "wd"
                shutil.rmtree(workdir, ignore_errors=True)
                shutil.copytree(cache, workdir)
                # untimed warm-up: imports and the cache's pages are read once, so no setting pays for a cold start
                subprocess.run([sys.executable, "-m", "mer_ensemble", "check", "-c", str(config), "--workdir",
                                str(workdir)], capture_output=True, check=True)
                walls[name] = _train_all_wall(config, workdir, jobs, threads, models)
            best = min(v for k, v in walls.items() if k != PARALLEL_SETTINGS[0][0])
            for name, wall in walls.items():
                print(f"| {label} | {name} | {wall:.0f} | {wall / best:.2f} |", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=sorted(PARTS), default="trainer", help="which benchmark to run")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--n", type=int, default=5030, help="training rows (MER2024 train: 5030)")
    parser.add_argument(
        "--dims",
        type=lambda s: [int(d) for d in s.split(",")],
        default=[1024, 5120, 768],
        help="feature dims per modality, comma-separated (default: HuBERT-large, Baichuan-13B, CLIP-L)",
    )
    parser.add_argument("--n-pool", type=int, default=20000, help="scale part: pool rows (MER2024: 20,000)")
    parser.add_argument("--n-test", type=int, default=1169, help="scale part: test rows (MER-SEMI: 1,169)")
    parser.add_argument("--folds", type=int, default=5, help="scale part: folds")
    parser.add_argument("--families", default=None, help="scale part: comma-separated families (default: all)")
    parser.add_argument("--datasets", default="emodb,meld", help="real part: configs to train")
    parser.add_argument("--compare", default="e806594", help="throughput part: the commit to compare with")
    parser.add_argument("--data", default=None, help="throughput part: an existing MER2024-layout data folder")
    parser.add_argument("--sets", default="all",
                        help="xgb part: comma-separated data sets (MER2024 demo, MEIJU demo, EmoDB, MELD) or all; "
                        "parallel part: demo, scale or all")
    parser.add_argument("--workdir", default="runs/bench-real", help="real part: where the runs go")
    parser.add_argument("--scale-models", default="linear_audio,mlp_audio",
                        help="parallel part: the demo config's runs trained at MER2024 scale")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--amp", action="store_true", help="let the Trainer use mixed precision on CUDA (the other loops stay float32)"
    )
    parser.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default=None,
        help="cpu: process CPU time (default on the CPU with one thread); wall: elapsed time (default otherwise)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    PARTS[args.part](args)


if __name__ == "__main__":
    main()
