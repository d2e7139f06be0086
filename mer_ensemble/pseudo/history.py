"""What each pseudo-label round scored (``pseudo/history.json``, ``pseudo/rounds.png``) and which
round ``blend`` uses (``pseudo/choice.json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mer_ensemble.io import atomic_write_json
from mer_ensemble.store import RunRecord

#: the file naming the round ``blend`` uses
CHOICE_FILE = "choice.json"


@dataclass
class RoundStats:
    """What one round added and how it scored."""

    round: int
    added: dict[str, dict[str, float]] = field(default_factory=dict)
    agree_rate: dict[str, float] = field(default_factory=dict)
    precision: dict[str, dict[str, float | None]] = field(default_factory=dict)
    cv_score: float = 0.0
    cv_per_target: dict[str, float] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: the soft vote's combined score on each fold's validation rows
    cv_folds: list[float] = field(default_factory=list)
    #: the round compared with (the last kept one), the paired gain over it and its standard error
    compared_with: int | None = None
    gain: float | None = None
    gain_se: float | None = None
    kept: bool = False




@dataclass
class RoundChoice:
    """The round ``blend`` uses (``pseudo/choice.json``): ``round``, its CV score, and per run id
    the store key of that round's record and the record's run digest (``spec_hash``)."""

    round: int
    cv_score: float
    runs: dict[str, dict[str, str]]
    rule: str = ("a round is kept when its CV gain over the last kept round exceeds its standard error "
                 "(paired over folds)")

    def text(self) -> str:
        return f"pseudo-label round {self.round} (soft-vote CV {self.cv_score:.4f})"


def save_choice(workdir: Path, kept: RoundStats, records: list[RunRecord]) -> RoundChoice:
    """Write ``pseudo/choice.json`` naming the kept round and its runs' records."""
    choice = RoundChoice(kept.round, kept.cv_score,
                         {r.manifest["run_id"]: {"key": r.key, "spec_hash": r.manifest.get("spec_hash")}
                          for r in records})
    atomic_write_json(Path(workdir) / "pseudo" / CHOICE_FILE, choice.__dict__)
    return choice


def load_choice(workdir: Path) -> RoundChoice | None:
    """The round chosen by the last ``pseudo-label`` in ``workdir`` (None when it never finished there)."""
    from mer_ensemble.errors import StoreError
    from mer_ensemble.io import read_json

    path = Path(workdir) / "pseudo" / CHOICE_FILE
    if not path.is_file():
        return None
    data = read_json(path, StoreError)
    try:
        return RoundChoice(int(data["round"]), float(data["cv_score"]),
                           {str(k): {"key": str(v["key"]), "spec_hash": v.get("spec_hash")}
                            for k, v in dict(data["runs"]).items()})
    except (KeyError, TypeError, ValueError, AttributeError):
        raise StoreError(f"{path}: damaged (expected round, cv_score and runs); run pseudo-label again "
                         "or delete it") from None


def round_records(workdir: Path, records: list[RunRecord]) -> tuple[list[RunRecord], str]:
    """The stored ``records`` a default blend uses, and a line saying which: the runs of the round
    the last ``pseudo-label`` kept (:func:`load_choice`), or, without one, the runs without
    pseudo-labels (round 0). A choice whose records were retrained since (another run digest) or
    are gone is not followed: round 0 then, with the line saying why."""
    base = [r for r in records if not int(r.manifest.get("round") or 0)]
    if len(base) == len(records):
        return records, ""
    choice = load_choice(workdir)
    if choice is None:
        return base, "runs without pseudo-labels (round 0): no pseudo-label choice in the workdir"
    by_key = {r.key: r for r in records}
    chosen, stale = [], []
    for run_id, entry in choice.runs.items():
        record = by_key.get(entry["key"])
        if record is None or record.manifest.get("spec_hash") != entry["spec_hash"]:
            stale.append(run_id)
        else:
            chosen.append(record)
    if stale:
        return base, (f"runs without pseudo-labels (round 0): the runs of pseudo-label round {choice.round} "
                      f"changed since ({', '.join(stale)}); run pseudo-label again")
    others = [r for r in base if r.manifest.get("run_id") not in choice.runs]  # runs pseudo-labelling did not use
    keep = {id(r) for r in chosen + others}
    return [r for r in records if id(r) in keep], choice.text()  # in the store's order, as a plain blend reads them


def save_history(workdir: Path, history: list[RoundStats]) -> Path:
    """Write ``pseudo/history.json`` and the round curves ``pseudo/rounds.png``."""
    folder = workdir / "pseudo"
    data = [s.__dict__ for s in history]
    atomic_write_json(folder / "history.json", data)
    plot_rounds(history, folder / "rounds.png")
    return folder / "history.json"


def plot_rounds(history: list[RoundStats], path: Path) -> Path:
    """Score, rows added and pseudo-label precision against round, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [s.round for s in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(rounds, [s.cv_score for s in history], marker="o", label="combined")
    targets = sorted({t for s in history for t in s.cv_per_target})
    for t in targets:
        axes[0].plot(rounds, [s.cv_per_target.get(t, np.nan) for s in history], marker=".", ls="--", label=t)
    axes[0].set(title="CV score (OOF, original labels)", xlabel="round")
    axes[0].legend(fontsize=8)
    for t in targets:
        axes[1].plot(rounds, [sum(s.added.get(t, {}).values()) for s in history], marker="o", label=t)
        axes[2].plot(rounds, [(s.precision.get(t) or {}).get("all") or np.nan for s in history], marker="o", label=t)
    axes[1].set(title="pseudo-labelled rows per fold", xlabel="round")
    axes[2].set(title="pseudo-label precision (truth file)", xlabel="round", ylim=(0, 1.02))
    for ax in axes[1:]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def history_json(workdir: Path) -> list[dict]:
    path = workdir / "pseudo" / "history.json"
    return json.loads(path.read_text()) if path.is_file() else []
