"""What a submission looks like for a task: its header and how each class is written."""

from __future__ import annotations

from collections.abc import Sequence

from mer_ensemble.tasks import TaskSpec

__all__ = ["SHOW", "expected_header", "first_items", "label_text"]

#: how many offending names or lines an error message shows
SHOW = 5


def first_items(items: Sequence[str], limit: int = SHOW) -> str:
    """The first ``limit`` items quoted, then how many more there are."""
    shown = ", ".join(repr(str(i)) for i in list(items)[:limit])
    return shown + (f" … (+{len(items) - limit} more)" if len(items) > limit else "")


def expected_header(task: TaskSpec) -> list[str]:
    """The submission header of ``task``: name column, then one column per target."""
    return [task.name_column] + [task.column_for(t) for t in task.target_names]


def label_text(task: TaskSpec, target: str) -> list[str]:
    """How each class of ``target`` is written in the submission, in class-index order."""
    classes = list(task.target(target).classes)
    return [c.lower() for c in classes] if task.submission == "mer2024" else classes
