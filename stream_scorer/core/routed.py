"""Scoring one feature matrix with a model route: champion and challenger rows, then the shadows."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

import numpy as np

from schemas.decisions import ShadowScore, trusted
from stream_scorer.metrics import Metrics
from stream_scorer.models.base import Model
from stream_scorer.models.registry import ModelRoute

log = logging.getLogger(__name__)

Groups = list[tuple[Model, list[int] | None]]
"""Rows per serving model; ``None`` rows means every row."""


def rows_of(rows: list[int] | None, n: int) -> np.ndarray | slice:
    return slice(0, n) if rows is None else np.asarray(rows, dtype=np.intp)


def predict_routed(groups: Groups, x: np.ndarray) -> tuple[np.ndarray, list[Model]]:
    """Scores per row from the model serving that row, and that model per row (one model call per group)."""
    n = len(x)
    if len(groups) == 1:
        model = groups[0][0]
        return model.predict(x), [model] * n
    scores = np.empty(n, dtype=np.float64)
    served: list[Model] = [groups[0][0]] * n
    for model, rows in groups:
        index = rows_of(rows, n)
        scores[index] = model.predict(x[index])
        for r in rows or range(n):
            served[r] = model
    return scores, served


def explain_routed(groups: Groups, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[Model]]:
    """:func:`predict_routed` plus each row's contributions, from each group's ``score_and_explain``."""
    n = len(x)
    if len(groups) == 1:
        model = groups[0][0]
        scores, contributions = model.score_and_explain(x)
        return scores, contributions, [model] * n
    scores = np.empty(n, dtype=np.float64)
    contributions = np.empty(x.shape, dtype=np.float64)
    served: list[Model] = [groups[0][0]] * n
    for model, rows in groups:
        index = rows_of(rows, n)
        scores[index], contributions[index] = model.score_and_explain(x[index])
        for r in rows or range(n):
            served[r] = model
    return scores, contributions, served


def score_shadows(route: ModelRoute, x: np.ndarray, *, event_ids: Sequence[str], event_times: Sequence[datetime],
                  served: Sequence[Model], served_scores: np.ndarray, served_actions: Sequence[str],
                  action: Callable[[Model, float], str], scored_at: datetime, metrics: Metrics,
                  out: list[ShadowScore] | None, drift: Callable[[Model, np.ndarray], None] | None = None) -> None:
    """Each shadow model scores every row; its scores never reach a decision, only metrics and ``out``."""
    name = route.champion.name
    for shadow in route.shadows:
        try:
            scores = shadow.predict(x)
        except Exception:  # a shadow must never cost a decision: count it, log it, go on
            log.exception("shadow model failed", extra={"model": name, "version": shadow.version})
            metrics.shadow_predictions.labels(name, shadow.version, "error").inc(len(x))
            continue
        if drift is not None:
            drift(shadow, scores)
        agree = 0
        records = []
        for row, score in enumerate(scores.tolist()):
            shadow_action = action(shadow, score)
            agree += shadow_action == served_actions[row]
            if out is not None:
                records.append(trusted(ShadowScore, dict(
                    model=name, event_id=event_ids[row], event_timestamp=event_times[row],
                    served_version=served[row].version, served_score=round(float(served_scores[row]), 6),
                    served_action=served_actions[row], shadow_version=shadow.version, shadow_score=round(score, 6),
                    shadow_action=shadow_action, scored_at=scored_at)))
        if out is not None:
            out.extend(records)
        hist = metrics.prediction_scores.labels(name, shadow.version)
        for score in scores.tolist():
            hist.observe(score)
        metrics.shadow_predictions.labels(name, shadow.version, "agree").inc(agree)
        metrics.shadow_predictions.labels(name, shadow.version, "disagree").inc(len(scores) - agree)
