"""What a folder-to-folder media command did (``transcribe``, ``denoise``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FolderReport"]


@dataclass
class FolderReport:
    """Counts of one run; ``failures``: ``(name, source, error)`` per file that failed, listed in
    ``errors_path``."""

    out: Path
    n_items: int
    n_written: int
    n_skipped: int
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0
    errors_path: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self, verb: str) -> str:
        """``"<out>: 3 <verb>, 1 skipped, 0 failed of 4 in 1.2s"``."""
        return (f"{self.out}: {self.n_written} {verb}, {self.n_skipped} skipped, {len(self.failures)} failed of "
                f"{self.n_items} in {self.seconds:.1f}s")
