"""One self-contained HTML page about a workdir: leaderboard, blend, errors, diversity, pseudo-labels.

Every image is embedded as a base64 PNG data URI and the style sheet is inline, so
the page opens offline and can be mailed as one file. Inputs (all optional except
the workdir): ``store/`` records, ``blend/latest.json`` + ``blend/latest.npz``
(written by :func:`mer_ensemble.blend.save_blend`), ``pseudo/history.json`` + ``pseudo/rounds.png``
(written by ``mer-ensemble pseudo-label``). A section whose inputs are missing says
so and names the command that makes them.
"""

from __future__ import annotations

import base64
import html
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mer_ensemble.blend import LatestBlend, load_latest_blend
from mer_ensemble.errors import StoreError
from mer_ensemble.report import plots
from mer_ensemble.report.leaderboard import leaderboard_rows
from mer_ensemble.store import RunRecord, load_runs

if TYPE_CHECKING:
    from mer_ensemble.experiment import Experiment

__all__ = ["Section", "build_report", "confusion_counts", "per_class_scores", "write_report"]

SECTION_IDS = ("leaderboard", "blend", "confusion", "per-class-f1", "diversity", "pseudo-labels")

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1f2933;background:#f5f7fa}
main{max-width:1300px;margin:0 auto;padding:20px 28px}
header{background:#243b53;color:#fff;padding:18px 28px}
header h1{margin:0 0 6px;font-size:24px}
header p{margin:2px 0;color:#d9e2ec;font-size:13px}
nav{margin-top:8px;font-size:13px}
nav a{color:#bcccdc;margin-right:14px;text-decoration:none}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);margin:18px 0;padding:14px 20px}
h2{margin:4px 0 10px;font-size:19px;color:#243b53}
h3{margin:14px 0 6px;font-size:15px;color:#334e68}
table{border-collapse:collapse;font-size:13px;margin:6px 0 10px}
th,td{padding:4px 10px;border-bottom:1px solid #e4e7eb;text-align:right}
th{background:#f0f4f8;color:#334e68}
td.l,th.l{text-align:left}
tr.chosen td{background:#e3f8ff;font-weight:600}
.note{color:#52606d;font-size:13px;margin:4px 0 8px}
.missing{color:#8d2b0b;background:#fff3ea;padding:8px 12px;border-radius:6px;font-size:14px}
.figs{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.figs figure{margin:0}
figcaption{font-size:12px;color:#52606d;text-align:center}
img{max-width:100%;height:auto}
code{background:#f0f4f8;padding:1px 4px;border-radius:3px}
"""


@dataclass
class Section:
    """One part of the page: an anchor id, a title and its HTML body."""

    id: str
    title: str
    body: str

    def render(self) -> str:
        return f'<section id="{self.id}">\n<h2>{html.escape(self.title)}</h2>\n{self.body}\n</section>'


def _e(value: Any) -> str:
    return html.escape(str(value))


def _img(png: bytes, alt: str, caption: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">{cap}</figure>'


def _missing(text: str) -> str:
    return f'<p class="missing">{text}</p>'


def _table(header: list[str], rows: list[list[Any]], *, left: int = 1, chosen: set[int] | None = None) -> str:
    """An HTML table; the first ``left`` columns are left-aligned; ``chosen`` row indices are highlighted."""
    def cell(tag: str, j: int, v: Any) -> str:
        return f'<{tag}{" class=l" if j < left else ""}>{_e(v)}</{tag}>'

    head = "".join(cell("th", j, h) for j, h in enumerate(header))
    body = "".join(
        f'<tr{" class=chosen" if chosen and i in chosen else ""}>' + "".join(cell("td", j, v) for j, v in enumerate(r))
        + "</tr>"
        for i, r in enumerate(rows)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def confusion_counts(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``(C, C)`` counts, rows the true class; rows with unknown labels (``y < 0``) are left out."""
    known = y >= 0
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (y[known], pred[known]), 1)
    return counts


def per_class_scores(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class ``(C,)`` from a confusion matrix."""
    tp = np.diag(counts).astype(float)
    predicted, support = counts.sum(axis=0), counts.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def _classes(records: list[RunRecord], target: str, n_classes: int) -> list[str]:
    for r in records:
        if target in r.manifest.get("classes", {}):
            return r.classes(target)
    return [str(c) for c in range(n_classes)]


def _leaderboard_section(records: list[RunRecord], blend: LatestBlend | None) -> Section:
    if not records:
        why = _missing("No stored runs yet: run <code>mer-ensemble train-all</code>.")
        return Section("leaderboard", "Leaderboard", why)
    rows = leaderboard_rows(records)
    targets = list(dict.fromkeys(t for r in rows for t in r["targets"]))
    in_blend: dict[str, list[str]] = {}
    for t, info in (blend.summary.get("targets", {}) if blend else {}).items():
        weights = (info.get("chosen") or {}).get("weights")
        for i, run in enumerate(info.get("runs", [])):
            if weights is None or (i < len(weights) and weights[i] > 0):
                in_blend.setdefault(run, []).append(t)
    modalities = {r.key: ",".join(r.manifest.get("modalities") or r.manifest.get("features", [])) for r in records}
    metric = {t: next(r["targets"][t][2] for r in rows if t in r["targets"]) for t in targets}
    header = ["run", "model", "modalities", "round"] + [f"{t} ({metric[t]})" for t in targets]
    header += (["combined"] if len(targets) > 1 else []) + ["OOF", "fit s"] + (["in chosen blend"] if blend else [])
    body = []
    for r in rows:
        line = [r["run"], r["model"], modalities.get(r["run"], ""), r["round"]]
        line += [f"{r['targets'][t][0]:.4f} ± {r['targets'][t][1]:.4f}" if t in r["targets"] else "—" for t in targets]
        if len(targets) > 1:
            line.append(f"{r['combined'][0]:.4f} ± {r['combined'][1]:.4f}")
        line += [f"{r['oof']:.4f}", f"{r['seconds']:.1f}"]
        if blend:
            line.append(", ".join(in_blend.get(r["run"], [])) or "")
        body.append(line)
    note = ('<p class="note">CV: mean ± sd over the validation folds (each fold scored by the model that did not '
            "train on it); OOF: the metric of the pooled out-of-fold predictions. Best combined score first.</p>")
    return Section("leaderboard", "Leaderboard", note + _table(header, body, left=3))


def _blend_section(blend: LatestBlend | None) -> Section:
    if blend is None:
        return Section("blend", "Blend", _missing("No blend yet: run <code>mer-ensemble blend</code> to fill this "
                                                  "section and the next two."))
    s = blend.summary
    parts = [f'<p class="note">Combined score estimate <b>{s.get("combined_nested", float("nan")):.4f}</b> '
             f'(nested CV; in-sample {s.get("combined_in_sample", float("nan")):.4f}). {_e(s.get("estimate", ""))}. '
             f'Blended {_e(s.get("created", ""))}; submission <code>{_e(s.get("submission", "—"))}</code>.</p>']
    for t, info in s.get("targets", {}).items():
        scores = info.get("scores", {})
        methods = list(scores)
        rows = [[m, f"{v['in_sample']:.4f}", f"{v['nested']:.4f}",
                 f"{np.std(v['nested_folds'], ddof=1):.4f}" if len(v.get("nested_folds", [])) > 1 else "—"]
                for m, v in scores.items()]
        chosen = {methods.index(info["method"])} if info.get("method") in methods else set()
        parts.append(f"<h3>{_e(t)}: chosen <code>{_e(info.get('method'))}</code></h3>")
        table = _table(["method", "in-sample", "nested", "nested fold sd"], rows, chosen=chosen)
        desc = info.get("chosen") or {}
        weights, runs = desc.get("weights"), desc.get("runs") or info.get("runs", [])
        if weights and len(weights) == len(runs):
            fig = _img(plots.weights_png(runs, weights, f"{t}: {info.get('method')} weights"),
                       f"blend weights for {t}", "weight of each run in the chosen blend")
        else:
            blender = _e(desc.get("blender", info.get("method")))
            listed = _e(", ".join(runs))
            fig = f'<p class="note">The chosen blender ({blender}) has no per-run weights; runs: {listed}.</p>'
        parts.append(f'<div class="figs"><div>{table}</div>{fig}</div>')
    return Section("blend", "Blend (chosen method and weights per target)", "\n".join(parts))


def _targets_with_nested(blend: LatestBlend | None) -> list[str]:
    if blend is None:
        return []
    return [t for t, p in blend.nested.items() if p is not None and p.ndim == 2 and t in blend.y]


def _confusion_section(blend: LatestBlend | None, records: list[RunRecord]) -> tuple[Section, Section]:
    targets = _targets_with_nested(blend)
    if not targets:
        why = _missing("No nested blend predictions (<code>blend/latest.npz</code>): run "
                       "<code>mer-ensemble blend</code>.")
        return (Section("confusion", "Confusion matrices (chosen blend)", why),
                Section("per-class-f1", "Per-class F1 (chosen blend)", why))
    assert blend is not None
    conf_parts, f1_parts = [], []
    note = ('<p class="note">Nested-CV estimate: each row is predicted by the chosen blender fitted on the other '
            "folds' out-of-fold predictions, so these counts are out of sample twice over (base models and blend).</p>")
    for t in targets:
        proba, y = blend.nested[t], np.asarray(blend.y[t]).astype(np.int64)
        n_classes = proba.shape[1]
        classes = _classes(records, t, n_classes)
        counts = confusion_counts(y, proba.argmax(1), n_classes)
        known = int(counts.sum())
        accuracy = np.trace(counts) / max(known, 1)
        conf_parts.append(_img(plots.confusion_png(counts, classes, f"{t} ({known} labelled rows)"),
                               f"confusion matrix for {t}", f"{t}: accuracy {accuracy:.3f}"))
        stats = per_class_scores(counts)
        rows = [[c, f"{stats['precision'][i]:.3f}", f"{stats['recall'][i]:.3f}", f"{stats['f1'][i]:.3f}",
                 int(stats["support"][i])] for i, c in enumerate(classes)]
        support = stats["support"]
        weighted = float((stats["f1"] * support).sum() / max(support.sum(), 1))
        rows.append(["macro avg", "", "", f"{stats['f1'].mean():.3f}", int(support.sum())])
        rows.append(["weighted avg", "", "", f"{weighted:.3f}", int(support.sum())])
        f1_parts.append(f"<h3>{_e(t)}</h3>")
        table = _table(["class", "precision", "recall", "F1", "support"], rows)
        chart = _img(plots.f1_png(classes, stats["f1"], support, f"{t}: F1 per class"), f"per-class F1 for {t}")
        f1_parts.append(f'<div class="figs"><div>{table}</div>{chart}</div>')
    return (Section("confusion", "Confusion matrices (chosen blend, nested-CV estimate)",
                    note + f'<div class="figs">{"".join(conf_parts)}</div>'),
            Section("per-class-f1", "Per-class F1 (chosen blend, nested-CV estimate)", note + "\n".join(f1_parts)))


def _true_class_proba(records: list[RunRecord], target: str, y: np.ndarray) -> np.ndarray:
    """``(R, n_known)`` each run's OOF probability of the true class."""
    known = y >= 0
    idx = np.arange(len(y))[known]
    return np.stack([r.oof[target][idx, y[known]] for r in records])


def _diversity_section(records: list[RunRecord], blend: LatestBlend | None,
                       labels: dict[str, np.ndarray] | None) -> Section:
    title = "Diversity of the runs (out-of-fold predictions)"
    if len(records) < 2:
        return Section("diversity", title, _missing("Fewer than two stored runs: nothing to compare."))
    base = records[0]
    same = [r for r in records if np.array_equal(r.rows, base.rows)]
    parts = []
    if len(same) < len(records):
        parts.append(f'<p class="note">Left out {len(records) - len(same)} run(s) predicting other rows than '
                     f"{_e(base.key)}.</p>")
    figs = []
    for t in dict.fromkeys(t for r in same for t in r.targets):
        runs = [r for r in same if t in r.oof]
        if len(runs) < 2:
            continue
        keys = [r.key for r in runs]
        y = (labels or {}).get(t)
        if y is None and blend is not None and t in blend.y and len(blend.y[t]) == len(base.rows):
            y = np.asarray(blend.y[t]).astype(np.int64)
        if y is not None and len(y) == len(base.rows) and (y >= 0).sum() > 2:
            p_true = _true_class_proba(runs, t, np.asarray(y))
            with np.errstate(invalid="ignore", divide="ignore"):
                matrix = np.nan_to_num(np.corrcoef(p_true), nan=0.0)
            np.fill_diagonal(matrix, 1.0)
            caption = f"{t}: Pearson correlation of the runs' OOF probability of the true class"
            figs.append(_img(plots.correlation_png(matrix, keys, caption), f"correlation heatmap for {t}", caption))
        else:
            votes = np.stack([r.oof[t].argmax(1) for r in runs])
            matrix = (votes[:, None, :] == votes[None, :, :]).mean(axis=2)
            caption = f"{t}: share of rows on which two runs predict the same class"
            figs.append(_img(plots.correlation_png(matrix, keys, caption, vmin=0.0), f"agreement heatmap for {t}",
                             caption))
    if not figs:
        return Section("diversity", title, _missing("No target is predicted by two or more runs."))
    parts.insert(0, '<p class="note">Runs that correlate less make better blend partners; a pair near 1 adds '
                    "little to an ensemble.</p>")
    return Section("diversity", title, "\n".join(parts) + f'<div class="figs">{"".join(figs)}</div>')


def _pseudo_section(workdir: Path) -> Section:
    title = "Pseudo-label rounds"
    folder = workdir / "pseudo"
    history_path, png_path = folder / "history.json", folder / "rounds.png"
    history = json.loads(history_path.read_text()) if history_path.is_file() else []
    if len(history) < 2:
        return Section("pseudo-labels", title, _missing("No pseudo-label rounds in this workdir: run "
                                                        "<code>mer-ensemble pseudo-label</code> to add some."))
    png = png_path.read_bytes() if png_path.is_file() else plots.rounds_png(history)
    rows = []
    for h in history:
        added = "; ".join(f"{t}: {sum(v.values()):.1f}" for t, v in (h.get("added") or {}).items()) or "—"
        agree = ", ".join(f"{t} {v:.2f}" for t, v in (h.get("agree_rate") or {}).items()) or "—"
        prec = ", ".join(f"{t} {p['all']:.3f}" for t, p in (h.get("precision") or {}).items()
                         if p and p.get("all") is not None) or "—"
        verdict = "—"
        if h.get("gain") is not None:
            verdict = (f"{h['gain']:+.4f} ± {h.get('gain_se') or 0:.4f} over round {h.get('compared_with')}: "
                       + ("kept" if h.get("kept") else "not kept"))
        rows.append([h["round"], f"{h.get('cv_score', float('nan')):.4f}", verdict, added, agree, prec,
                     len(h.get("runs", []))])
    table = _table(["round", "CV", "gain ± SE (paired over folds)", "rows added per fold", "agreement",
                    "precision (truth file)", "runs"], rows)
    note = ('<p class="note">Round 0 is plain training. CV is scored on the original labels only; pseudo-labels '
            "of fold k come from models that never saw fold k. A round is kept when its gain over the last kept "
            "round exceeds its standard error; blend uses the last kept round.</p>")
    return Section("pseudo-labels", title, note + table + _img(png, "pseudo-label round curves"))


def _labels_of(exp: Experiment | None, records: list[RunRecord]) -> dict[str, np.ndarray] | None:
    """Labels of the stored runs' rows ``{target: (m,)}``, when an experiment is given."""
    if exp is None or not records:
        return None
    ds = exp.dataset
    return {t: np.asarray(ds.labels[t])[records[0].rows] for t in ds.labels}


def build_report(workdir: Path, exp: Experiment | None = None) -> str:
    """The HTML text of the report of ``workdir`` (see the module doc for the inputs)."""
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise StoreError(f"workdir {workdir} not found; pass the --workdir of a train-all")
    records = load_runs(workdir)
    blend = load_latest_blend(workdir)
    labels = _labels_of(exp, records)
    sections = [_leaderboard_section(records, blend), _blend_section(blend), *_confusion_section(blend, records),
                _diversity_section(records, blend, labels), _pseudo_section(workdir)]
    task = (records[0].manifest.get("task") if records else None) or (blend.summary.get("task") if blend else "—")
    source = (exp.config.source if exp else None) or (blend.summary.get("config") if blend else None) or "—"
    nav = "".join(f'<a href="#{s.id}">{_e(s.title.split(" (")[0])}</a>' for s in sections)
    head = (f"<header><h1>mer-ensemble report: {_e(workdir.name)}</h1>"
            f"<p>task <b>{_e(task)}</b> • config {_e(source)} • workdir {_e(workdir.resolve())} • "
            f"{len(records)} stored run(s) • generated {time.strftime('%Y-%m-%d %H:%M:%S')}</p>"
            f"<nav>{nav}</nav></header>")
    body = "\n".join(s.render() for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>mer-ensemble report: {_e(workdir.name)}</title><style>{_CSS}</style></head>"
            f"<body>{head}<main>\n{body}\n</main></body></html>\n")


def write_report(workdir: Path, exp: Experiment | None = None, out: Path | None = None) -> Path:
    """Write the report atomically to ``out`` (default ``<workdir>/report.html``); returns the path.

    With ``exp`` (the workdir's experiment) the diversity heatmaps use the true labels.
    """
    from mer_ensemble.io import atomic_write_text

    text = build_report(workdir, exp)
    return atomic_write_text(Path(out) if out else Path(workdir) / "report.html", text)
