"""Where jobs run: in this process, or in worker processes that a deadline can stop.

Both executors take :class:`~mer_ensemble.training.jobs.JobSpec` jobs one at a time
(:meth:`submit`) and hand back the finished ones (:meth:`wait`); the
:class:`~mer_ensemble.training.budget.Scheduler` decides what to submit when.
:func:`run_jobs` runs a list of jobs without a budget (locally or on a Dask cluster).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mer_ensemble.progress import progress_bar
from mer_ensemble.training.jobs import JobSpec, run_job

__all__ = ["InlineExecutor", "ProcessExecutor", "run_jobs"]


class InlineExecutor:
    """Runs each submitted job in this process when waited for."""

    def __init__(self) -> None:
        self._queue: list[JobSpec] = []

    def submit(self, job: JobSpec) -> None:
        self._queue.append(job)

    def wait(self, timeout: float | None) -> list[JobSpec]:
        job = self._queue.pop(0)
        run_job(job)
        return [job]

    def kill(self) -> None:  # pragma: no cover - nothing runs between calls
        self._queue.clear()

    def close(self) -> None:
        self._queue.clear()


class ProcessExecutor:
    """Runs jobs in ``workers`` worker processes (loky); :meth:`kill` stops them at once."""

    def __init__(self, workers: int) -> None:
        import warnings

        from joblib.externals.loky import get_reusable_executor

        # workers idle for 60 s exit; when the reused pool gets jobs as one exits, loky starts another and
        # warns that "a worker stopped while some jobs were given to the executor": nothing is lost
        warnings.filterwarnings("ignore", message="A worker stopped while some jobs were given", category=UserWarning)
        self._pool = get_reusable_executor(max_workers=workers, timeout=60)
        self._futures: dict[Any, JobSpec] = {}

    def submit(self, job: JobSpec) -> None:
        self._futures[self._pool.submit(run_job, job)] = job

    def wait(self, timeout: float | None) -> list[JobSpec]:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        finished = []
        for future in done:
            job = self._futures.pop(future)
            error = future.exception()
            if error is not None:
                self.kill()
                raise error
            finished.append(job)
        return finished

    def kill(self) -> None:
        self._pool.shutdown(wait=True, kill_workers=True)
        self._futures.clear()

    def close(self) -> None:
        self._futures.clear()


def run_jobs(jobs: list[JobSpec], *, n_jobs: int = 1, backend: str = "local", scheduler: str | None = None,
             progress: bool = True) -> None:
    """Run the jobs whose output is missing, with a progress bar (done / total, time left);
    ``n_jobs`` at a time (in this process when 1), or on a Dask cluster."""
    todo = [j for j in jobs if not Path(j.out).is_file()]
    with progress_bar(len(jobs), "training", enabled=None if progress else False) as advance:
        advance(len(jobs) - len(todo))
        if not todo:
            return
        if backend == "dask":
            from mer_ensemble.training.cluster import run_on_dask

            run_on_dask(todo, scheduler, advance)
            return
        executor = InlineExecutor() if n_jobs == 1 else ProcessExecutor(n_jobs)
        pending = list(todo)
        running = 0
        try:
            while pending or running:
                while pending and running < n_jobs:
                    executor.submit(pending.pop(0))
                    running += 1
                finished = executor.wait(None)
                running -= len(finished)
                advance(len(finished))
        finally:
            executor.close()
