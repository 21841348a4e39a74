"""Reference distributions written into metadata, for drift monitoring (PSI) later.

Binning rule shared by both: with interior ``edges`` ``e_1 < ... < e_k``, a value ``x`` falls in bin
``searchsorted(edges, x, side="right")`` (``numpy``), i.e. bins ``(-inf, e_1), [e_1, e_2), ..., [e_k, inf)``;
``fractions`` gives the share of the reference rows in each of those ``k + 1`` bins.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

DECILES = np.linspace(0.1, 0.9, 9)
SCORE_HISTOGRAM_BINS = 20


def binned(values: np.ndarray, edges: np.ndarray) -> list[float]:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return (counts / max(len(values), 1)).tolist()


def score_baseline(scores: np.ndarray) -> dict[str, Any]:
    """Deciles of the validation scores plus a fixed 20-bin histogram on [0, 1]."""
    edges = np.unique(np.quantile(scores, DECILES))
    hist, hist_edges = np.histogram(scores, bins=SCORE_HISTOGRAM_BINS, range=(0.0, 1.0))
    return {
        "source": "validation period",
        "rows": len(scores),
        "decile_edges": edges.tolist(),
        "fractions": binned(scores, edges),
        "histogram_edges": hist_edges.tolist(),
        "histogram_counts": hist.tolist(),
        "mean": float(np.mean(scores)),
    }


def feature_baseline(x: np.ndarray, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per feature: deduplicated decile edges of the training rows and the share of rows per bin."""
    out: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(names):
        col = x[:, j].astype(np.float64)
        edges = np.unique(np.quantile(col, DECILES))
        out[name] = {"quantile_edges": edges.tolist(), "fractions": binned(col, edges), "mean": float(col.mean()),
                     "min": float(col.min()), "max": float(col.max())}
    return out


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of a frame's content (values and column names, row order included)."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
