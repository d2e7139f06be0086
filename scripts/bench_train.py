"""Training benchmarks, printed as tables (results go to docs/benchmarks.md).

Part ``trainer`` (issue 3): throughput in samples/s of :class:`mer_ensemble.training.trainer.Trainer`
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
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

PARTS: dict[str, Callable[[argparse.Namespace], None]] = {}


def part(name: str) -> Callable[[Callable[[argparse.Namespace], None]], Callable[[argparse.Namespace], None]]:
    """Register a benchmark part under ``--part name``."""

    def decorate(func: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
        PARTS[name] = func
        return func

    return decorate


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

    from mer_ensemble.models._blocks import AttentionFusionNet

    torch.manual_seed(seed)
    modalities = [(f"m{i}", d, "utt") for i, d in enumerate(dims)]
    return AttentionFusionNet(modalities, hidden, 0.3, [("y", n_classes)])


def run_trainer(net: Any, features: dict, labels: np.ndarray, epochs: int, args: argparse.Namespace) -> None:
    """mer-ensemble's Trainer, no validation rows (fixed number of epochs)."""
    from mer_ensemble.training.trainer import Trainer

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

    from mer_ensemble.training.device import resolve_device

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

    from mer_ensemble.training.device import resolve_device

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

    from mer_ensemble.training.device import resolve_device

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
