"""The fraud decisions of a scored batch: from each row's score, contributions' top factors and features to the
seed's fields.

:func:`fraud_decisions_py` is the definition. ``_decide.c`` builds the same decisions (equal, tested: every
field, the explanation's text included) without a Python frame per row; at ~13 us per row the Python loop was
the largest single cost of a decision after the features. What needs Python's own objects stays in the caller:
the decision ids (keyed BLAKE2b) and the missing features (the state's counters).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from types import ModuleType

from schemas.decisions import FraudDecision, trusted
from stream_scorer.core import decisions as d
from stream_scorer.core.explain import fraud_explanation, phrase_table

Served = tuple[str, float, float]
"""The model that served a row: its version and its decline and review thresholds (``decisions.thresholds_of``)."""

FIELDS = ("fraud_score", "risk_level", "confidence", "recommended_action", "explanation", "top_risk_factors",
          "features_used", "latency_ms", "model_version", "feature_freshness_sec", "transaction_id", "decision_id",
          "event_timestamp", "scored_at", "features_missing", "degraded")
"""``FraudDecision``'s fields in the order ``_decide.c`` writes them (checked against the model at import)."""


def fraud_decisions_py(scores: Sequence[float], served: Sequence[Served], factors: Sequence[list[int]],
                       rows: Sequence[Sequence[float]], names: Sequence[str], event_ids: Sequence[str],
                       times: Sequence[float], updated_at: Sequence[float | None], missing: Sequence[list[str]],
                       decision_ids: Sequence[str], now: float, scored_at: datetime, latency_ms: float,
                       degraded: bool) -> tuple[list[FraudDecision], list[str]]:
    """The decisions, and the action of each (for the metrics and the shadows)."""
    out: list[FraudDecision] = []
    actions: list[str] = []
    for row, raw in enumerate(scores):
        version, decline, review = served[row]
        score = round(raw, 6)  # the action follows the score the decision shows
        risk, action = d.action_for(score, decline, review)
        top = factors[row]
        out.append(trusted(FraudDecision, {
            "fraud_score": score, "risk_level": risk, "confidence": d.confidence(score),
            "recommended_action": action,
            "explanation": fraud_explanation(risk, score, names, rows[row], top),
            "top_risk_factors": [names[j] for j in top], "features_used": len(names), "latency_ms": latency_ms,
            "model_version": version, "feature_freshness_sec": freshness(now, updated_at[row]),
            "transaction_id": event_ids[row], "decision_id": decision_ids[row],
            "event_timestamp": datetime.fromtimestamp(times[row], UTC), "scored_at": scored_at,
            "features_missing": missing[row], "degraded": degraded,
        }))
        actions.append(action)
    return out, actions


def freshness(now: float, updated_at: float | None) -> float | None:
    return None if updated_at is None else round(max(0.0, now - updated_at), 3)


def fraud_decisions(scores: Sequence[float], served: Sequence[Served], factors: Sequence[list[int]],
                    rows: Sequence[Sequence[float]], names: tuple[str, ...], event_ids: Sequence[str],
                    times: Sequence[float], updated_at: Sequence[float | None], missing: Sequence[list[str]],
                    decision_ids: Sequence[str], now: float, scored_at: datetime, latency_ms: float,
                    degraded: bool) -> tuple[list[FraudDecision], list[str]]:
    """:func:`fraud_decisions_py`, in C when the extension is built."""
    if _native is None:
        return fraud_decisions_py(scores, served, factors, rows, names, event_ids, times, updated_at, missing,
                                  decision_ids, now, scored_at, latency_ms, degraded)
    return _native.fraud_decisions(FraudDecision, FIELDS, scores, served, factors, rows, names, phrase_table(names),
                                   event_ids, times, updated_at, missing, decision_ids, now, scored_at, latency_ms,
                                   degraded, UTC)


_native: ModuleType | None
try:
    from stream_scorer.core import _decide as _native
except ImportError:  # not built (no C compiler at install): the definition itself
    _native = None
if tuple(FraudDecision.model_fields) != FIELDS:  # the C builder writes FIELDS: a changed model must not use it
    _native = None
NATIVE = _native is not None
