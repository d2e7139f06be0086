"""The status of a ``train-all`` call: what finished, was cut or skipped, and why.

Written to ``workdir/train-status.json`` at the end of every call and shown under the
leaderboard (``train-all``, ``leaderboard``), so a budgeted call says what it left for the next.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mer_ensemble.errors import StoreError
from mer_ensemble.io import atomic_write_json
from mer_ensemble.training.budget import Unit
from mer_ensemble.training.plan import RunPlan
from mer_ensemble.training.resources import Slots

__all__ = ["STATUS_FILE", "load_status", "render_status", "run_status", "write_status"]

STATUS_FILE = "train-status.json"


def run_status(plan: RunPlan, units: list[Unit]) -> dict[str, Any]:
    """One run's outcome: ``done`` (every seed), ``partial`` (some seeds), ``cut`` (folds of no
    complete seed) or ``skipped``, with the reason per unfinished seed."""
    mine = [u for u in units if u.run == plan.key]
    complete = [u.seed for u in mine if u.complete]
    folds_done = sum(len(u.done) for u in mine)
    if len(complete) == len(mine):
        state = "done"
    elif complete:
        state = "partial"
    elif folds_done:
        state = "cut"
    else:
        state = "skipped"
    reasons = {f"seed {u.seed}": f"{u.state if u.state != 'pending' else 'skipped'}: {u.reason}"
               for u in mine if not u.complete}
    return {"status": state, "model": plan.spec.name, "seeds_done": complete, "seeds": list(plan.seeds),
            "jobs_done": folds_done, "jobs": len(plan.jobs), "why": reasons, "threads": plan.jobs[0].threads}


def write_status(workdir: Path, plans: list[RunPlan], units: list[Unit], slots: Slots, *,
                 time_limit: float | None, elapsed: float, round_: int) -> Path:
    """Write ``workdir/train-status.json`` for a call that planned ``plans`` as ``units``."""
    status = {
        "time_limit": time_limit,
        "elapsed": round(elapsed, 1),
        "slots": slots.describe(),
        "round": round_,
        "runs": {plan.key: run_status(plan, units) for plan in plans},
    }
    return atomic_write_json(Path(workdir) / STATUS_FILE, status)


def load_status(workdir: Path) -> dict[str, Any] | None:
    """The status of the last ``train-all`` in ``workdir`` (None when there is none)."""
    path = Path(workdir) / STATUS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: unreadable train status ({exc.__class__.__name__}); delete it") from None


def render_status(status: dict[str, Any] | None) -> str:
    """Lines about what the last ``train-all`` did not finish (empty when everything finished)."""
    if not status:
        return ""
    runs = status.get("runs", {})
    unfinished = {k: v for k, v in runs.items() if v["status"] != "done"}
    limit = status.get("time_limit")
    head = []
    if limit:
        done = sum(v["status"] == "done" for v in runs.values())
        head.append(f"time limit {limit:.0f}s: {done} of {len(runs)} run(s) finished in "
                    f"{status.get('elapsed', 0):.0f}s ({status.get('slots', '')})")
    if not unfinished:
        return "\n".join(head)
    head.append("not finished (a later train-all continues from the finished folds):")
    for key, v in unfinished.items():
        kept = f"; stored with seeds {v['seeds_done']}" if v["seeds_done"] else "; no record"
        why = "; ".join(f"{s} {r}" for s, r in v["why"].items())
        head.append(f"  {key} ({v['model']}): {v['status']}, {v['jobs_done']}/{v['jobs']} jobs{kept} — {why}")
    return "\n".join(head)
