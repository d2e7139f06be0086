"""Run training jobs on a Dask distributed cluster.

The jobs are the same picklable :class:`~mer_ensemble.training.jobs.JobSpec` the
local runner uses; each worker runs :func:`~mer_ensemble.training.jobs.run_job`,
which reads the dataset from the workdir and writes its result atomically to
``spec.out``. So the workdir must be shared storage mounted at the same path on
the client and every worker, and a cluster run resumes like a local one.

A job whose device is CUDA and whose model family runs on a GPU (its declared
``uses_gpu``) asks the scheduler for ``resources={"GPU": 1}``: such jobs
only go to workers started with ``dask worker ADDRESS --resources GPU=1``.
With ``train.device: auto`` no resource is requested and a job uses CUDA when
its worker has it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from mer_ensemble.errors import ClusterError, ConfigError
from mer_ensemble.training.jobs import JobSpec, run_job

__all__ = ["ClusterError", "absolute_paths", "job_key", "job_resources", "run_on_dask"]

def job_resources(job: JobSpec) -> dict[str, float] | None:
    """Dask resource hints of one job: ``{"GPU": 1}`` when it must run on a GPU, else ``None``."""
    if not str(job.device).lower().startswith("cuda"):
        return None
    from mer_ensemble.models import get_model_class

    return {"GPU": 1} if get_model_class(job.model["name"]).uses_gpu else None


def job_key(job: JobSpec) -> str:
    """A readable, unique Dask task key: run, fold, seed and a digest of the output path."""
    digest = hashlib.sha1(job.out.encode()).hexdigest()[:10]
    return f"mer-{job.run_key}-fold{job.fold}-seed{job.seed}-{digest}"


def job_label(job: JobSpec) -> str:
    """How errors name a job: ``run audio-run fold 2 seed 0``."""
    return f"run {job.run_key} fold {job.fold} seed {job.seed}"


def absolute_paths(job: JobSpec) -> JobSpec:
    """The job with its config, workdir, folds, output and pseudo-label paths made absolute.

    Workers start in their own folder, so relative paths (and data paths relative to a
    relative config path) would point elsewhere there; shared storage must be mounted
    at the same absolute path on every machine.
    """
    def absolute(path: str | None) -> str | None:
        return None if path is None else str(Path(path).expanduser().resolve())

    source = job.config_source
    return replace(job, config_source=absolute(source) if Path(source).is_file() else source,
                   workdir=str(absolute(job.workdir)), folds_path=str(absolute(job.folds_path)),
                   out=str(absolute(job.out)), pseudo_file=absolute(job.pseudo_file))


def run_on_worker(job: JobSpec) -> str:
    """Run one job on a Dask worker with the thread count it was planned with: the count is
    part of the job key (it changes a CPU fit's numbers), so a worker must not change it."""
    return run_job(job)


def _connect(scheduler: str | None, timeout: float) -> Any:
    if not scheduler:
        raise ConfigError(
            "train.scheduler: the dask backend needs a scheduler address, e.g. --scheduler tcp://10.0.0.5:8786"
        )
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - distributed is a dependency
        raise ClusterError("the dask backend needs the 'distributed' package (pip install 'dask[distributed]')") \
            from None
    try:
        return Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {first}") from None


def _check_workers(client: Any, scheduler: str, jobs: list[JobSpec], wait_s: float) -> None:
    try:
        client.wait_for_workers(1, timeout=wait_s)
    except TimeoutError:
        raise ClusterError(f"the Dask scheduler at {scheduler} has no worker after {wait_s:.0f}s; "
                           f"start one with: dask worker {scheduler} --nthreads 1") from None
    need_gpu = sum(1 for j in jobs if job_resources(j))
    if not need_gpu:
        return
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    if not any((w.get("resources") or {}).get("GPU", 0) >= 1 for w in workers):
        raise ClusterError(f"{need_gpu} job(s) need a GPU (train.device cuda) but no worker of {scheduler} declares "
                           f"one; start GPU workers with: dask worker {scheduler} --nthreads 1 --resources GPU=1")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def run_on_dask(jobs: list[JobSpec], scheduler: str | None, advance: Callable[[int], None], *,
                connect_timeout: float = 30.0, wait_for_workers: float = 60.0) -> None:
    """Run ``jobs`` on the Dask cluster at ``scheduler``; call ``advance(1)`` as each one finishes.

    Results land in each job's ``out`` file (written by the worker). The first failed
    job cancels the rest and raises :class:`ClusterError` naming its run, fold and seed;
    jobs that already finished stay stored, so running again does only the missing ones.
    """
    if not jobs:
        return
    client = _connect(scheduler, connect_timeout)
    try:
        _check_workers(client, str(scheduler), jobs, wait_for_workers)
        from distributed import as_completed

        futures = {}
        for job in map(absolute_paths, jobs):
            future = client.submit(run_on_worker, job, key=job_key(job), resources=job_resources(job))
            futures[future.key] = (future, job)
        for future in as_completed([f for f, _ in futures.values()]):
            job = futures[future.key][1]
            if future.status != "finished":
                exc = future.exception() if future.status == "error" else None
                client.cancel([f for f, _ in futures.values()])
                reason = _one_line(exc) if exc is not None else f"task {future.status}"
                raise ClusterError(f"{job_label(job)} failed on the Dask cluster: {reason}")
            advance(1)
    finally:
        client.close()
