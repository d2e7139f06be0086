"""Helpers the benchmark scripts share: ``--part`` registries and markdown tables on stdout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Parts", "markdown_table"]


class Parts(dict):
    """``--part name`` -> function; ``@parts("name")`` registers one."""

    def __call__(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            self[name] = func
            return func

        return decorate


def markdown_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """A GitHub-markdown table under a ``###`` title, on stdout."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
