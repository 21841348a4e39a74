"""Population stability index (PSI) of a served model against the training baselines in its ``metadata.json``.

The baselines (``training/baselines.py``) bin the validation scores and each feature's training rows by
``np.searchsorted(edges, value, side="right")``; a :class:`DriftMonitor` bins the rows it serves by that same rule,
keeps the bin indices of the last ``window`` rows and compares their shares with the baseline's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_WINDOW = 10_000
DEFAULT_MIN_ROWS = 500
DEFAULT_TOP_FEATURES = 8
PSI_FLOOR = 1e-4
# Rows are staged as they come and binned a chunk at a time: binning (and picking the monitored columns) costs
# ~10 µs of numpy call overhead per call, which a single-row HTTP request would otherwise pay alone.
_CHUNK = 64

log = logging.getLogger(__name__)


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = PSI_FLOOR) -> float:
    """``sum((a - e) * ln(a / e))`` over bins, ``expected`` and ``actual`` being each bin's share of its rows.

    Both shares are floored at ``eps`` first (not renormalised): a bin empty on one side would make the term
    infinite, and with the floor one such bin adds at most about ``share * ln(share / eps)`` (0.69 for a share
    of 0.1 at the default 1e-4), so a new or vanished bin reads as a major shift rather than as infinity.
    """
    e = np.maximum(np.asarray(expected, dtype=np.float64), eps)
    a = np.maximum(np.asarray(actual, dtype=np.float64), eps)
    if e.shape != a.shape:
        raise ValueError(f"psi: {e.shape[0]} expected bins but {a.shape[0]} actual bins")
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True, slots=True)
class DriftReport:
    """PSI over the window; ``score`` is None and ``features`` empty below ``min_rows`` or without a baseline."""

    rows: int
    score: float | None
    features: dict[str, float]


@dataclass(frozen=True, slots=True)
class _Baseline:
    edges: np.ndarray
    fractions: np.ndarray


def _baseline(entry: object, edges_key: str, what: str) -> _Baseline | None:
    """The edges and fractions of one metadata baseline, or None when absent or not usable (logged)."""
    if not isinstance(entry, Mapping) or edges_key not in entry or "fractions" not in entry:
        return None
    try:
        edges = np.asarray(entry[edges_key], dtype=np.float64)
        fractions = np.asarray(entry["fractions"], dtype=np.float64)
    except (TypeError, ValueError):
        edges = fractions = np.empty(0)
    if (edges.ndim != 1 or fractions.shape != (len(edges) + 1,) or not np.isfinite(edges).all()
            or not np.isfinite(fractions).all() or np.any(np.diff(edges) <= 0)):
        log.warning("drift baseline unusable, not monitored", extra={"baseline": what})
        return None
    return _Baseline(edges, fractions)


def monitored_features(raw: Mapping[str, Any], feature_names: Sequence[str],
                       top_features: int = DEFAULT_TOP_FEATURES, exclude: Collection[str] = ()) -> list[str]:
    """The ``top_features`` most important served features with a usable baseline (by ``feature_importance`` in
    the metadata); without importance, every served feature with a usable baseline, in serving order."""
    return list(_feature_baselines(raw, feature_names, top_features, exclude))


def _feature_baselines(raw: Mapping[str, Any], feature_names: Sequence[str],
                       top_features: int, exclude: Collection[str] = ()) -> dict[str, _Baseline]:
    baselines = raw.get("feature_baseline")
    if not isinstance(baselines, Mapping):
        return {}
    names = [name for name in feature_names if name not in exclude]
    importance = raw.get("feature_importance")
    limit = len(names)
    if isinstance(importance, Mapping) and importance:
        names.sort(key=lambda name: -_share(importance.get(name)))  # stable: ties keep the serving order
        limit = top_features
    found: dict[str, _Baseline] = {}
    for name in names:
        if len(found) >= limit:
            break
        baseline = _baseline(baselines.get(name), "quantile_edges", name)
        if baseline is not None:
            found[name] = baseline
    return found


def _share(value: object) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0


class DriftMonitor:
    """The last ``window`` rows of one model version, as bin indices of its score and top features.

    Column 0 of the bins is the score when the metadata has a ``score_baseline``; the monitored features follow.
    What has no baseline is not monitored; with no baseline at all the monitor is inactive and ignores rows.
    """

    def __init__(self, raw: Mapping[str, Any], feature_names: Sequence[str], *, window: int = DEFAULT_WINDOW,
                 min_rows: int = DEFAULT_MIN_ROWS, top_features: int = DEFAULT_TOP_FEATURES,
                 exclude: Collection[str] = ()) -> None:
        if window < 1 or min_rows < 1:
            raise ValueError(f"window ({window}) and min_rows ({min_rows}) must be at least 1")
        self.window = window
        self.min_rows = min_rows
        score = _baseline(raw.get("score_baseline"), "decile_edges", "score")
        features = _feature_baselines(raw, feature_names, top_features, exclude)
        self.has_score = score is not None
        self.features = tuple(features)
        self._n_inputs = len(feature_names)
        self._columns = np.array([list(feature_names).index(name) for name in features], dtype=np.intp)
        self._first = 1 if self.has_score else 0
        baselines = ([score] if score is not None else []) + list(features.values())
        width = max((len(b.edges) for b in baselines), default=0)
        # Edges padded with NaN: `edge > value` is False for a padded edge, so bin = edges - count(edge > value)
        # is exactly searchsorted(edges, value, side="right") for each column, NaN values included (last bin).
        self._edges = np.full((len(baselines), width), np.nan)
        for c, b in enumerate(baselines):
            self._edges[c, :len(b.edges)] = b.edges
        self._n_edges = np.array([len(b.edges) for b in baselines], dtype=np.intp)
        self._expected = [b.fractions for b in baselines]
        self._bins = np.zeros((window, len(baselines)), dtype=np.uint8 if width < 255 else np.uint16)
        self._pos = 0
        self._filled = 0
        self._staged_x = np.empty((_CHUNK, self._n_inputs), dtype=np.float64)
        self._staged_scores = np.empty(_CHUNK, dtype=np.float64)
        self._n_staged = 0

    @property
    def active(self) -> bool:
        """Whether there is any baseline to compare with."""
        return bool(self._expected)

    @property
    def rows(self) -> int:
        """Rows in the window (at most ``window``)."""
        return min(self._filled + self._n_staged, self.window)

    def observe(self, x: np.ndarray, scores: np.ndarray) -> None:
        """Add a batch: ``x`` of shape ``(rows, features)`` in ``feature_names`` order, ``scores`` of ``(rows,)``."""
        n = len(scores)
        if x.shape != (n, self._n_inputs):
            raise ValueError(f"drift: x of shape {x.shape} for {n} scores and {self._n_inputs} features")
        if n == 0 or not self._expected:
            return
        if self._n_staged + n > _CHUNK:
            self._flush()
            if n > _CHUNK:
                self._push(self._bin(x, scores))
                return
        self._staged_x[self._n_staged:self._n_staged + n] = x
        self._staged_scores[self._n_staged:self._n_staged + n] = scores
        self._n_staged += n

    def report(self) -> DriftReport:
        """Score and per-feature PSI of the rows in the window (nothing below ``min_rows``)."""
        self._flush()
        rows = self._filled
        if rows < self.min_rows or not self._expected:
            return DriftReport(rows, None, {})
        window = self._bins[:rows]
        psis = [psi(expected, np.bincount(window[:, c], minlength=len(expected)) / rows)
                for c, expected in enumerate(self._expected)]
        return DriftReport(rows, psis[0] if self.has_score else None,
                           dict(zip(self.features, psis[self._first:], strict=True)))

    # --------------------------------------------------------------------------------------------- internals
    def _bin(self, x: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Bin indices of the monitored columns, shape ``(rows, columns)``."""
        values = np.empty((len(scores), len(self._expected)), dtype=np.float64)
        if self.has_score:
            values[:, 0] = scores
        values[:, self._first:] = x[:, self._columns]
        return self._n_edges - (self._edges > values[:, :, None]).sum(axis=2)

    def _flush(self) -> None:
        if self._n_staged:
            k = self._n_staged
            self._push(self._bin(self._staged_x[:k], self._staged_scores[:k]))
            self._n_staged = 0

    def _push(self, bins: np.ndarray) -> None:
        """Write into the ring, overwriting the oldest rows."""
        n = len(bins)
        if n >= self.window:
            self._bins[:] = bins[n - self.window:]
            self._pos, self._filled = 0, self.window
            return
        first = min(n, self.window - self._pos)
        self._bins[self._pos:self._pos + first] = bins[:first]
        self._bins[:n - first] = bins[first:]
        self._pos = (self._pos + n) % self.window
        self._filled = min(self._filled + n, self.window)
