"""Where a command may write a file the user named (``blend --out``, ``report --out``,
``tune --write-config``): nothing a user types destroys stored data.

Two rules, each lifted only by ``--force``:

1. nothing is written into the workdir's own files: its folders (store, cache, jobs, blend,
   pseudo, tune) and the files beside them (``folds.csv``, ``folds.json``, ``optuna.db``,
   ``tune.db``, ``train-status.json``);
2. an existing file is replaced only when this toolkit wrote it: a submission whose sidecar
   records it unchanged (:func:`mer_ensemble.submission.written_here`), a report or a config
   carrying the toolkit's mark. Label, test and pool lists, truth files, store records and any
   other file are refused.

The check covers every file a command writes for one path (a submission's CSV, its ``.json``
sidecar and its ``.zip``) and runs before any work starts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from mer_ensemble.errors import ConfigError

__all__ = ["WORKDIR_FILES", "check_output", "starts_with", "workdir_part"]

#: files a workdir keeps beside its folders, and what each holds
WORKDIR_FILES = {"folds.csv": "the folds", "folds.json": "the folds' hash", "optuna.db": "the blend studies",
                 "tune.db": "the tuning studies", "train-status.json": "the last train-all's status"}


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def workdir_part(path: str | Path, workdir: str | Path) -> str | None:
    """What of ``workdir`` the file ``path`` would land in or replace (None: none of its own files)."""
    from mer_ensemble.experiment import WORKDIR_FOLDERS

    target, root = Path(path).resolve(), Path(workdir).resolve()
    for name, role in WORKDIR_FOLDERS.items():
        if _inside(target, root / name):
            return f"{role}, {root / name}"
    for name, role in WORKDIR_FILES.items():
        if target == root / name:
            return f"{role}, {target}"
    return None


def check_output(
    option: str,
    paths: Sequence[Path],
    *,
    workdir: str | Path | None,
    ours: Callable[[Path], bool],
    what: str,
    force: bool = False,
    data_root: str | Path | None = None,
) -> None:
    """Refuse to write ``paths`` (every file one ``option`` value writes; ``paths[0]`` the main one)
    into the workdir's own files, or over an existing file for which ``ours(path)`` is false
    (``what`` says what the toolkit would have written, e.g. "a submission mer-ensemble wrote").
    One :class:`ConfigError` naming the file, unless ``force``."""
    if force:
        return
    for path in paths:
        part = workdir_part(path, workdir) if workdir is not None else None
        if part is not None:
            raise ConfigError(f"{option} {paths[0]}: would write {path} inside the workdir's own files ({part}), "
                              "which would be lost; choose a path outside them (or pass --force)")
    for path in paths:
        if (path.exists() or path.is_symlink()) and not ours(path):
            where = ""
            if data_root is not None and _inside(path.resolve(), Path(data_root).resolve()):
                where = f", a file of the data in {data_root}"
            raise ConfigError(f"{option} {paths[0]}: {path} exists and is not {what}{where}; refusing to replace "
                              "it: choose another path (or pass --force)")


def starts_with(mark: str) -> Callable[[Path], bool]:
    """``ours`` for :func:`check_output`: the file's first 512 bytes hold ``mark`` (a report's title,
    a written config's header line)."""

    def ours(path: Path) -> bool:
        try:
            with open(path, "rb") as handle:
                return mark.encode() in handle.read(512)
        except OSError:
            return False

    return ours
