"""Demo data command: ``demo-data`` writes a synthetic dataset in a competition's layout."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from mer_ensemble.cli._app import app, friendly_errors


@app.command("demo-data")
@friendly_errors
def demo_data_cli(
    out: Path = typer.Argument(..., help="Folder to create; refused if it exists and is not empty."),
    layout: str = typer.Option("mer2024", "--layout", help="File layout: mer2024 or meiju."),
    n_train: int | None = typer.Option(
        None, "--n-train", help="Labelled rows (default 1200 for mer2024, 800 for meiju)."
    ),
    n_pool: int | None = typer.Option(None, "--n-pool", help="Unlabelled pool rows (default 3000 / 1200)."),
    n_test: int | None = typer.Option(None, "--n-test", help="Test rows (default 400 / 300)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed writes the same files."),
    dims: str | None = typer.Option(
        None, "--dims", help="Feature dimension per modality, e.g. audio=1024,text=768,video=512 (the default)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists and is not empty."),
) -> None:
    """Write a synthetic dataset (three modalities, labels, pool, test, truth files) in a real competition layout."""
    import json

    from mer_ensemble.data.demo import make_demo

    start = time.perf_counter()
    path = make_demo(
        out, layout=layout, n_train=n_train, n_pool=n_pool, n_test=n_test, dims=dims, seed=seed, overwrite=overwrite
    )
    meta = json.loads((path / "demo-meta.json").read_text(encoding="utf-8"))
    sizes = ", ".join(f"{k} {v}" for k, v in meta["sizes"].items())
    dims_text = ", ".join(f"{m} {d}" for m, d in meta["dims"].items())
    typer.echo(f"wrote {meta['layout']} demo data to {path} in {time.perf_counter() - start:.1f}s")
    typer.echo(f"  rows: {sizes}")
    typer.echo(f"  features ({meta['level']} level): {dims_text}; seed {meta['seed']}")
    typer.echo(f"  see {path / 'README.txt'}")
