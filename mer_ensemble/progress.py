"""A progress bar with counts, elapsed time and time left, shared by long commands."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["progress_bar"]


@contextmanager
def progress_bar(total: int, description: str, *, enabled: bool | None = None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n=1)``; draws a rich bar on stderr ("12/40 • 0:00:31 • 0:01:10 left").

    Disabled (a no-op) when ``MER_NO_PROGRESS`` is set or ``enabled`` is False.
    """
    if enabled is None:
        enabled = not os.environ.get("MER_NO_PROGRESS") and total > 0
    if not enabled:
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(file=sys.stderr)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("•"),
        TimeElapsedColumn(),
        TextColumn("•"),
        TimeRemainingColumn(),
        TextColumn("left"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)
