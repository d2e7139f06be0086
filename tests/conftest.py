"""Shared fixtures: small generated datasets in each layout, and the shared real data when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

os.environ.setdefault("MER_NO_PROGRESS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MER_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"shared data {path} not present")
    return path


def write_generic(root: Path, *, n_train: int = 60, n_test: int = 20, n_pool: int = 30, dims=(8, 6), seed: int = 0,
                  frame_feature: bool = False, text: bool = False) -> Path:
    """A small generic-layout dataset with two targets and a group column; returns the root.

    ``text``: a ``text`` column as MELD has, each row's number of words growing with its emotion
    (3-5 words for class 0, 9-11 for 1, 15-17 for 2), so that a model of text length can learn it."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    n = n_train + n_test + n_pool
    names = [f"utt{i:04d}" for i in range(n)]
    split = ["train"] * n_train + ["test"] * n_test + ["unlabeled"] * n_pool
    emo = rng.integers(0, 3, n)
    sent = (emo + rng.integers(0, 2, n)) % 2
    emo_names = np.array(["anger", "joy", "neutral"])[emo]
    sent_names = np.array(["negative", "positive"])[sent]
    df = pd.DataFrame({
        "name": names, "split": split,
        "emotion": np.where(np.array(split) == "train", emo_names, ""),
        "sentiment": np.where(np.array(split) == "train", sent_names, ""),
        "dialogue": [f"d{i // 3}" for i in range(n)],
    })
    if text:
        words = 3 + 6 * emo + rng.integers(0, 3, n)
        df["text"] = [" ".join(["word"] * int(k)) for k in words]
    df.to_csv(root / "labels.csv", index=False)
    truth = pd.DataFrame({"name": names, "split": split, "emotion": emo_names, "sentiment": sent_names})
    truth[truth["split"] != "train"].to_csv(root / "truth.csv", index=False)
    for f, d in zip(("fa", "fb"), dims, strict=False):
        folder = root / "features" / f"{f}-UTT"
        folder.mkdir(parents=True)
        centers = rng.normal(size=(3, d)) * 2
        for i, name in enumerate(names):
            np.save(folder / f"{name}.npy", (centers[emo[i]] + rng.normal(size=d)).astype(np.float32))
    if frame_feature:
        folder = root / "features" / "fc-FRA"
        folder.mkdir(parents=True)
        for i, name in enumerate(names):
            t = rng.integers(2, 6)
            np.save(folder / f"{name}.npy", (rng.normal(size=(t, 4)) + emo[i]).astype(np.float32))
    return root


def write_config(path: Path, data_root: Path, **overrides) -> Path:
    cfg = {
        "task": "generic",
        "data": {
            "layout": "generic",
            "root": str(data_root),
            "targets": ["emotion", "sentiment"],
            "group_by": "dialogue",
            "features": {"audio": ["fa-UTT"], "text": ["fb-UTT"]},
        },
        "cv": {"folds": 3, "seeds": [0]},
        "models": [{"name": "linear", "id": "lin"}],
    }
    for key, value in overrides.items():
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module: fast for tiny nets and stable on a shared CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def generic_root(tmp_path: Path) -> Path:
    return write_generic(tmp_path / "data")


@pytest.fixture
def generic_config(tmp_path: Path, generic_root: Path) -> Path:
    return write_config(tmp_path / "exp.yaml", generic_root)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random BERT (2 layers), HuBERT and Whisper (2 layers each) saved with their preprocessors,
    for the families and commands that fine-tune a checkpoint."""
    pytest.importorskip("transformers")
    from mer_ensemble.extract.testing import save_tiny_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")
    return {kind: save_tiny_checkpoint(kind, root / kind, layers=2) for kind in ("bert", "hubert", "whisper")}
