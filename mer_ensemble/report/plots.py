"""Figures of the HTML report, each returned as PNG bytes (matplotlib, Agg backend)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["confusion_png", "correlation_png", "f1_png", "rounds_png", "weights_png"]

_DPI = 100


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    """Render and close ``fig``; no metadata (the page stays free of links)."""
    plt = _pyplot()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def confusion_png(counts: np.ndarray, classes: Sequence[str], title: str) -> bytes:
    """Confusion matrix ``(C, C)`` (rows true class, columns predicted); colour = share of the true class."""
    plt = _pyplot()
    n = len(classes)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 1.6 + 0.55 * n
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{int(counts[i, j])}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.55 else "black")
    ax.set_xticks(range(n), classes, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    return _png(fig)


def weights_png(runs: Sequence[str], weights: Sequence[float], title: str) -> bytes:
    """Horizontal bars: one per run, largest weight on top."""
    plt = _pyplot()
    order = np.argsort(np.asarray(weights, dtype=float))
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.32 * len(runs)))
    values = np.asarray(weights, dtype=float)[order]
    ax.barh([runs[i] for i in order], values, color="#4c72b0")
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.3f}", va="center", fontsize=8)
    ax.set(xlabel="weight", title=title, xlim=(0, max(float(values.max(initial=0)) * 1.18, 0.05)))
    ax.tick_params(axis="y", labelsize=8)
    return _png(fig)


def correlation_png(matrix: np.ndarray, labels: Sequence[str], title: str, *, vmin: float = -1.0) -> bytes:
    """Heatmap of a symmetric ``(R, R)`` matrix between runs (annotated when R is small)."""
    plt = _pyplot()
    n = len(labels)
    size = 2.5 + 0.45 * n
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(matrix, cmap="RdBu_r" if vmin < 0 else "viridis", vmin=vmin, vmax=1)
    if n <= 16:
        for i in range(n):
            for j in range(n):
                dark = abs(matrix[i, j]) > 0.75 if vmin < 0 else matrix[i, j] < 0.5
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    ax.set_xticks(range(n), labels, rotation=50, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return _png(fig)


def f1_png(classes: Sequence[str], f1: np.ndarray, support: np.ndarray, title: str) -> bytes:
    """Bars of per-class F1 with the class support written on each bar."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.5, 0.8 * len(classes) + 1.5), 3.4))
    bars = ax.bar(list(classes), f1, color="#55a868")
    for bar, value, n in zip(bars, f1, support, strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, value, f"{value:.2f}\nn={int(n)}", ha="center", va="bottom",
                fontsize=7)
    ax.set(ylim=(0, 1.15), ylabel="F1", title=title)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    return _png(fig)


def rounds_png(history: Sequence[dict[str, Any]]) -> bytes:
    """Pseudo-label rounds from ``pseudo/history.json``: CV score and rows added per fold against round."""
    plt = _pyplot()
    rounds = [h["round"] for h in history]
    targets = sorted({t for h in history for t in h.get("cv_per_target", {})})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    axes[0].plot(rounds, [h.get("cv_score", np.nan) for h in history], marker="o", label="combined")
    for t in targets:
        axes[0].plot(rounds, [h.get("cv_per_target", {}).get(t, np.nan) for h in history], marker=".", ls="--",
                     label=t)
        axes[1].plot(rounds, [sum((h.get("added") or {}).get(t, {}).values()) for h in history], marker="o",
                     label=t)
    axes[0].set(title="CV score (OOF, original labels)", xlabel="round")
    axes[1].set(title="pseudo-labelled rows per fold", xlabel="round")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.set_xticks(rounds)
    return _png(fig)
