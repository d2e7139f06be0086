"""The leaderboard of stored runs: CV metric per target and combined, ± sd, seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mer_ensemble.store import RunRecord, load_runs

__all__ = ["leaderboard_rows", "render_leaderboard"]


def leaderboard_rows(records: list[RunRecord]) -> list[dict[str, Any]]:
    """One dict per run, best combined CV score first."""
    rows = []
    for r in records:
        m = r.manifest
        rows.append({
            "run": m["key"],
            "model": m["model"],
            "features": ",".join([*m["features"], *(f"raw:{k}" for k in m.get("raw_inputs") or {})]),
            "round": m.get("round", 0),
            "targets": {t: (v["mean"], v["sd"], v["metric"]) for t, v in m["cv"].items()},
            "combined": (m["combined"]["mean"], m["combined"]["sd"]),
            "oof": m["combined"]["oof"],
            "seconds": m.get("fit_seconds", 0.0),
        })
    rows.sort(key=lambda r: -r["combined"][0])
    return rows


def render_leaderboard(records: list[RunRecord] | Path, title: str | None = None) -> str:
    """A plain-text table (rich renders it; the text is also what tests read)."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    if isinstance(records, (str, Path)):
        records = load_runs(Path(records))
    rows = leaderboard_rows(records)
    targets: list[str] = []
    for r in rows:
        for t in r["targets"]:
            if t not in targets:
                targets.append(t)
    metric_of = {t: next(r["targets"][t][2] for r in rows if t in r["targets"]) for t in targets}
    table = Table(title=title or "leaderboard (CV: mean ± sd over validation folds)", show_lines=False)
    for col in ("run", "model", "features"):
        table.add_column(col)
    for t in targets:
        table.add_column(f"{t} {metric_of[t]}", justify="right")
    if len(targets) > 1:
        table.add_column("combined", justify="right")
    table.add_column("OOF", justify="right")
    table.add_column("seconds", justify="right")
    for r in rows:
        cells = [r["run"], r["model"], r["features"]]
        for t in targets:
            cells.append(f"{r['targets'][t][0]:.4f} ± {r['targets'][t][1]:.4f}" if t in r["targets"] else "—")
        if len(targets) > 1:
            cells.append(f"{r['combined'][0]:.4f} ± {r['combined'][1]:.4f}")
        cells.append(f"{r['oof']:.4f}")
        cells.append(f"{r['seconds']:.1f}")
        table.add_row(*cells)
    buf = StringIO()
    Console(file=buf, width=200, force_terminal=False).print(table)
    return buf.getvalue().rstrip()
