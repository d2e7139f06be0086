"""Where a model runs: device choice, mixed-precision dtype and the CPU thread budget.

torch is imported inside the functions so that importing this module stays cheap.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from mer_ensemble.errors import ModelError

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICES", "amp_dtype", "available_threads", "cuda_available", "resolve_device"]

DEVICES = ("auto", "cpu", "cuda")


def cuda_available() -> bool:
    """True when torch sees at least one CUDA device."""
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(device: str = "auto") -> torch.device:
    """Turn ``"auto"`` / ``"cpu"`` / ``"cuda"`` (or ``"cuda:1"``) into a :class:`torch.device`.

    ``"auto"`` picks CUDA when present, else the CPU. Asking for CUDA on a machine
    without it raises :class:`ModelError` rather than silently running on the CPU.
    """
    import torch

    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not cuda_available():
            raise ModelError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
        return torch.device(name)
    raise ModelError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)} (or 'cuda:<index>')")


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for ``device``: bfloat16 on CUDA when supported, else float16;
    ``None`` on the CPU (training stays in float32 there)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def available_threads() -> int:
    """The CPU threads this process may use: the smallest of the CPU affinity, the
    ``OMP_NUM_THREADS`` variable, the OpenMP limits set with threadpoolctl and, when
    torch is loaded, ``torch.get_num_threads()``. Libraries that take an explicit
    thread count (XGBoost's ``nthread``) use this so that a runner's limit holds."""
    limits = [len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1]
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        limits.append(int(env))
    try:
        from threadpoolctl import threadpool_info

        limits += [int(info["num_threads"]) for info in threadpool_info() if info.get("user_api") == "openmp"]
    except Exception:  # noqa: BLE001 - threadpoolctl is advisory here
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        limits.append(int(torch.get_num_threads()))
    return max(1, min(limits))
