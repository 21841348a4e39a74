"""The report's PNG plots (matplotlib ``Figure`` objects rendered by Agg, no pyplot global state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve

PR_CURVE = "pr_curve.png"
CALIBRATION = "calibration.png"
FEATURE_IMPORTANCE = "feature_importance.png"
SCORE_DISTRIBUTION = "score_distribution.png"


def _figure(width: float = 6.4, height: float = 4.8) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def pr_curve(path: Path, labels: np.ndarray, curves: dict[str, np.ndarray], title: str) -> None:
    """Precision-recall curves of one or more scorers on the same labels (legend shows their AP)."""
    from sklearn.metrics import average_precision_score

    fig = _figure()
    ax = fig.subplots()
    for name, scores in curves.items():
        precision, recall, _ = precision_recall_curve(labels, scores)
        ax.plot(recall, precision, label=f"{name} (AP {average_precision_score(labels, scores):.3f})")
    ax.axhline(float(np.mean(labels)), color="grey", linestyle=":", label=f"base rate {np.mean(labels):.4f}")
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    fig.savefig(path, bbox_inches="tight")


def calibration(path: Path, table: pd.DataFrame, title: str) -> None:
    """Reliability diagram: mean predicted probability vs observed rate per score bin (log-log)."""
    fig = _figure()
    ax = fig.subplots()
    low = 1e-4
    ax.plot([low, 1], [low, 1], color="grey", linestyle=":", label="perfectly calibrated")
    seen = table.loc[table["positive_rate"] > 0]
    ax.plot(seen["mean_score"], seen["positive_rate"], marker="o", label="model (log-spaced score bins)")
    empty = table.loc[table["positive_rate"] == 0]
    if len(empty):
        ax.scatter(empty["mean_score"], np.full(len(empty), low), marker="v", facecolors="none",
                   edgecolors="tab:red", label="bin without positives")
    for row in table.itertuples(index=False):
        ax.annotate(f"{row.rows:,}", (row.mean_score, max(row.positive_rate, low)), textcoords="offset points",
                    xytext=(4, -10), fontsize=7, color="dimgrey")
    ax.set(xscale="log", yscale="log", xlabel="mean predicted probability", ylabel="observed positive rate",
           title=title, xlim=(low / 2, 1.5), ylim=(low / 2, 1.5))
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3, which="both")
    fig.savefig(path, bbox_inches="tight")


def feature_importance(path: Path, importance: dict[str, float], title: str) -> None:
    items = sorted(importance.items(), key=lambda kv: kv[1])
    fig = _figure(6.4, 0.28 * len(items) + 1.2)
    ax = fig.subplots()
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    ax.set(xlabel="share of importance", title=title)
    ax.grid(alpha=0.3, axis="x")
    fig.savefig(path, bbox_inches="tight")


def score_distribution(path: Path, labels: np.ndarray, scores: np.ndarray, thresholds: dict[str, float],
                       title: str, class_names: tuple[str, str]) -> None:
    fig = _figure()
    ax = fig.subplots()
    bins = np.linspace(0.0, 1.0, 51).tolist()
    for value, name in ((0, class_names[0]), (1, class_names[1])):
        ax.hist(scores[labels == value], bins=bins, alpha=0.6, label=f"{name} ({int(np.sum(labels == value))})")
    for i, (name, t) in enumerate(sorted(thresholds.items(), key=lambda kv: kv[1])):
        ax.axvline(t, color=f"C{i + 2}", linestyle="--", label=f"{name} threshold {t:.3f}")
    ax.set(yscale="log", xlabel="score", ylabel="events", title=title)
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    fig.savefig(path, bbox_inches="tight")
