"""eGeMAPS on EmoDB through the CLI: alone, and beside the shipped features.

1. ``mer-ensemble extract -m audio --model opensmile:eGeMAPSv02`` on EmoDB's wavs -> eGeMAPS_UTT (88);
2. three configs (speaker-grouped 5-fold CV, test = speakers 15/16): eGeMAPS alone; the shipped
   features (whisper-tiny-UTT, mfcc-UTT, minilm-UTT); the shipped features plus eGeMAPS;
   each with the portfolio of ``models: auto`` limited to linear and mlp (1 seed);
3. ``train-all``, ``blend`` and ``score`` against ``test-truth.csv`` (read only by ``score``).

Columns: the best single run's CV (speaker-grouped 5-fold, mean of folds), the blend's nested CV
estimate (fit on K-1 folds' OOF rows, scored on the held-out fold), the blend's test weighted F1.

    python scripts/bench_egemaps.py --work /tmp/egemaps-bench
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import markdown_table, run_cli  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EMODB = Path(os.environ.get("MER_SHARED_DATA", REPO.parent / "shared" / "data")) / "emodb"
SHIPPED = {"audio": ["whisper-tiny-UTT", "mfcc-UTT"], "text": ["minilm-UTT"]}


def config(work: Path, name: str, features: dict[str, list[str]], roots: list[Path]) -> Path:
    cfg = {
        "task": "generic",
        "data": {"layout": "mer2024", "root": str(EMODB), "label_file": "label-train.csv",
                 "test_file": "test-names.csv", "targets": ["discrete"], "group_by": "speaker",
                 "feature_root": [str(r) for r in roots], "features": features},
        "cv": {"folds": 5, "seeds": [0]},
        "models": "auto",
        "portfolio": {"families": ["linear", "mlp"], "seeds": 1},
        "truth": {"test": str(EMODB / "test-truth.csv")},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/egemaps-bench"))
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    ours = work / "features"
    run_cli("extract", "-m", "audio", "--model", "opensmile:eGeMAPSv02", "-i", EMODB / "wav", "-o",
            ours / "eGeMAPS_UTT", "--no-progress")
    settings = {
        "eGeMAPS alone": {"audio": ["eGeMAPS_UTT"]},
        "shipped (whisper-tiny, mfcc, minilm)": SHIPPED,
        "shipped + eGeMAPS": {"audio": [*SHIPPED["audio"], "eGeMAPS_UTT"], "text": SHIPPED["text"]},
    }
    rows = []
    for index, (label, features) in enumerate(settings.items()):
        path = config(work, f"setting{index}", features, [ours, EMODB / "features"])
        wd = work / f"wd{index}"
        run_cli("train-all", "-c", path, "--workdir", wd)
        from mer_ensemble.store import load_runs

        best = max(load_runs(wd), key=lambda r: r.manifest["cv"]["discrete"]["mean"])
        sub = work / f"sub{index}.csv"
        run_cli("blend", "-c", path, "--workdir", wd, "--out", sub)
        sidecar = json.loads(sub.with_suffix(".json").read_text())
        nested = sidecar["combined_nested"]
        scored = run_cli("score", sub, "--truth", EMODB / "test-truth.csv", "-c", path)
        test = float(scored.split("discrete:")[1].split()[0])
        rows.append([label, f"{best.manifest['run_id']} {best.manifest['cv']['discrete']['mean']:.4f}",
                     f"{nested:.4f} ({sidecar['targets']['discrete']['method']})", f"{test:.4f}"])
    markdown_table("EmoDB (7 classes, weighted F1): eGeMAPS through the CLI",
                   ["features", "best single run (CV)", "blend (nested CV)", "blend (test, speakers 15/16)"], rows)


if __name__ == "__main__":
    main()
