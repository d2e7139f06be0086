"""How many jobs run at once and how many CPU threads each one uses.

``train.threads`` fixes the threads of every job; left unset, :func:`job_threads` picks them
from where the job's model runs (:func:`family_on_cuda`: the family's declared ``uses_gpu`` and
``train.device``) only. The thread count changes the numbers a CPU fit produces
(torch, MKL/OpenBLAS and the tree libraries sum in a different order with another count; see
``docs/benchmarks.md``), so it is part of a run's job key and never depends on how many jobs
run in parallel: ``--jobs 1`` and ``--jobs 4`` write the same predictions.

``train.jobs: auto`` then picks how many jobs run at once (:func:`choose_slots`,
:func:`auto_slots`): as many as the
cores hold at the jobs' thread counts, fewer when the machine's memory cannot hold that many
copies of the training data, and one job in this process when the work is too small to pay
for starting worker processes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mer_ensemble.experiment import Experiment
    from mer_ensemble.training.budget import CostModel, Unit

__all__ = [
    "INLINE_BELOW_SECONDS",
    "Slots",
    "auto_slots",
    "choose_slots",
    "cpu_cores",
    "cuda_devices",
    "family_on_cuda",
    "job_memory_bytes",
    "job_threads",
    "runs_on_cuda",
    "total_memory_bytes",
]

#: estimated work (seconds of jobs) below which ``auto`` runs the jobs in this process: a
#: worker process costs a few seconds to start (imports, reading the dataset's cache)
INLINE_BELOW_SECONDS = 20.0
#: threads of a job whose network trains on CUDA (they only prepare batches and predictions)
CUDA_JOB_THREADS = 4
#: parallel jobs per GPU with ``train.jobs: auto`` (small networks leave a GPU mostly idle)
JOBS_PER_GPU = 2
#: share of the machine's memory the parallel jobs may fill
MEMORY_SHARE = 0.7
#: memory of a job process before it reads any data (interpreter and the numeric libraries)
BASE_JOB_BYTES = 600 * 2**20


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity; else ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def total_memory_bytes() -> int:
    """The machine's physical memory in bytes (a fixed 8 GiB when it cannot be read)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


def cuda_devices() -> int:
    """How many CUDA devices torch sees (0 without torch or CUDA)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def runs_on_cuda(family_uses_gpu: bool, device: str) -> bool:
    """Whether a job of a family with ``uses_gpu`` runs on CUDA under ``train.device``."""
    name = str(device).lower()
    if not family_uses_gpu or name == "cpu":
        return False
    return name.startswith("cuda") or cuda_devices() > 0


def family_on_cuda(family: str, device: str) -> bool:
    """Whether jobs of the registered ``family`` run on CUDA under ``train.device`` (its
    declared ``uses_gpu``)."""
    from mer_ensemble.models import get_model_class

    return runs_on_cuda(get_model_class(family).uses_gpu, device)


def job_threads(on_cuda: bool, configured: int | None = None) -> int:
    """CPU threads of one job: ``train.threads`` when set, else 1 on the CPU (independent
    jobs in parallel processes use the cores better than threads inside one small fit:
    ``scripts/bench_train.py --part parallel``) and :data:`CUDA_JOB_THREADS` for a job whose
    model runs on CUDA (``on_cuda``, :func:`family_on_cuda`). Never depends on the number of
    parallel jobs."""
    if configured:
        return int(configured)
    if on_cuda:
        return min(CUDA_JOB_THREADS, cpu_cores())
    return 1


def job_memory_bytes(n_rows: int, dim: int) -> int:
    """Rough peak memory of one job: the process itself plus about four float32 copies of its
    training rows ``(n_rows, dim)`` (gathered inputs, standardised copy, tensors, gradients'
    inputs) and its prediction chunks."""
    return BASE_JOB_BYTES + 4 * 4 * int(n_rows) * int(dim)


@dataclass(frozen=True)
class Slots:
    """How jobs share the machine: at most ``jobs`` at once, their threads summing to at most
    ``cores`` (None: no limit), run in this process when ``inline``."""

    jobs: int
    cores: int | None
    inline: bool
    reason: str

    def describe(self) -> str:
        where = "in this process" if self.inline else "in worker processes"
        return f"{self.jobs} job(s) at a time {where} ({self.reason})"


def auto_slots(*, threads: list[int], memory: list[int], work_seconds: float, gpu_jobs: int = 0,
               time_limit: float | None = None) -> Slots:
    """``train.jobs: auto`` for the jobs left to run.

    ``threads``/``memory``: per job to run (:func:`job_threads`, :func:`job_memory_bytes`);
    ``work_seconds``: their estimated total seconds; ``gpu_jobs``: how many of them run on CUDA;
    ``time_limit``: the budget, if any. Small work runs in this process, unless a budget could
    need to stop a running job (worker processes can be killed, this process cannot). Otherwise
    picks the cores over the typical thread count, capped by the machine's memory over the
    largest job's, by :data:`JOBS_PER_GPU` per GPU when the jobs run on CUDA and by the number
    of jobs.
    """
    cores = cpu_cores()
    n_todo = len(threads)
    safe_inline = time_limit is None or 5 * work_seconds < time_limit
    if n_todo == 0:
        return Slots(1, None, True, "nothing to run")
    if safe_inline and (work_seconds < INLINE_BELOW_SECONDS or cores == 1):
        why = "one core" if cores == 1 else f"~{work_seconds:.0f}s of work, less than starting workers costs"
        return Slots(1, None, True, why)
    typical = sorted(threads)[len(threads) // 2]
    by_cores = max(1, cores // max(typical, 1))
    by_memory = max(1, int(MEMORY_SHARE * total_memory_bytes() // max(max(memory), 1)))
    limits = {"cores": by_cores, "memory": by_memory, "jobs to run": n_todo}
    if gpu_jobs:
        limits["GPUs"] = max(1, JOBS_PER_GPU * cuda_devices())
    jobs = min(limits.values())
    binding = min(limits, key=lambda k: limits[k])
    return Slots(jobs, cores, False, f"{cores} cores; limited by {binding}")


def choose_slots(setting: int | str, units: Sequence[Unit], exp: Experiment, cost: CostModel, *,
                 time_limit: float | None) -> Slots:
    """How many jobs run at once: the ``train.jobs``/``--jobs`` number, or ``auto`` (:func:`auto_slots`
    over the jobs still to run, with their threads, memory, estimated seconds and devices)."""
    # units whose single fold is longer than the whole budget will be skipped: they do not count
    fits = [u for u in units if time_limit is None or cost.per_job(u)[0] <= time_limit]
    todo = [(u, j) for u in fits for k, j in enumerate(u.jobs) if k not in u.done]
    if setting != "auto":
        n = int(setting)
        # one job with a time limit still runs in a worker, which the deadline can stop
        return Slots(n, None, n == 1 and time_limit is None, "train.jobs / --jobs")
    ds = exp.dataset
    n_fit = int(len(exp.folds.rows) * (exp.folds.n_folds - 1) / exp.folds.n_folds)
    device = exp.config.train.device
    gpu = [family_on_cuda(u.family, device) for u, _ in todo]
    memory = [job_memory_bytes(n_fit, sum(ds.features[f].dim for f in j.features)) for _, j in todo]
    return auto_slots(threads=[j.threads for _, j in todo], memory=memory,
                      work_seconds=sum(cost.per_job(u)[0] for u, _ in todo), gpu_jobs=sum(gpu), time_limit=time_limit)
