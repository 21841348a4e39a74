"""Decisions: the bodies of ``/score/*`` responses and of messages on the output topics."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

RiskLevel = Literal["low", "medium", "high"]
RecommendedAction = Literal["approve", "review", "decline"]

TIMING_FIELDS = frozenset({"latency_ms", "scored_at", "feature_freshness_sec"})
"""Fields that depend on when a decision was computed; everything else is deterministic per event and model."""


M = TypeVar("M", bound=BaseModel)


def trusted(cls: type[M], values: dict[str, Any]) -> M:
    """A model from values the scoring core computed itself (no validation), with every field given.

    ``model_construct`` costs ~6 us in Python (defaults, aliases, extras); setting the instance state directly is
    ~1.5 us, and the scorer builds one decision per event. Equal to ``model_construct`` (tested); with any field
    missing or out of order it falls back to it."""
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = _FIELDS[cls] = tuple(cls.model_fields)
    if tuple(values) != fields:  # serialisation follows the dict's order: declaration order only
        return cls.model_construct(**values)
    obj = cls.__new__(cls)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", set(fields))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


_FIELDS: dict[type[BaseModel], tuple[str, ...]] = {}
"""Field names per model class in declaration order (reading ``model_fields`` costs ~1 us each time)."""
_set = object.__setattr__


JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_SERIALIZE_NUMPY
"""orjson's options for a decision's fields (``to_json``); a document embedding ``decision.__dict__`` dumped with
them holds the decision as ``to_json`` writes it."""


def to_json(decision: BaseModel) -> bytes:
    """A decision's (or shadow score's) JSON, byte-equal to ``model_dump_json().encode()`` (tested) at half its
    cost: orjson over the field values, which for these models are plain types (str, float, int, bool, None, lists
    of str, UTC datetimes written with ``Z``; a numpy scalar is written as its value). The stream encodes one per
    event."""
    return orjson.dumps(decision.__dict__, option=JSON_OPTIONS)


class FraudDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    fraud_score: float = Field(ge=0, le=1, examples=[0.15])
    risk_level: RiskLevel
    confidence: float = Field(ge=0, le=1, description="How sure the calibrated model is of the outcome it favours: "
                                                      "max(fraud_score, 1 - fraud_score).")
    recommended_action: RecommendedAction
    explanation: str
    top_risk_factors: list[str]
    features_used: int
    latency_ms: float
    model_version: str
    feature_freshness_sec: float | None = Field(
        description="Age, at scoring time, of the most recently updated feature this decision read; null when "
                    "no stored feature exists for the transaction's entities.")
    transaction_id: str
    decision_id: str = Field(description="Deterministic per (transaction, model version): redeliveries match.")
    event_timestamp: datetime
    scored_at: datetime
    features_missing: list[str] = Field(default_factory=list)
    degraded: bool = Field(default=False, description="True when the feature store was unreachable and "
                                                      "defaults were used.")


class PersonalizationDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    relevance_score: float = Field(ge=0, le=1)
    conversion_probability: float = Field(ge=0, le=1)
    engagement_score: float = Field(ge=0, le=1)
    user_segment: str
    behavioral_signals: list[str]
    features_used: int
    latency_ms: float
    model_version: str
    event_id: str
    decision_id: str
    event_timestamp: datetime
    scored_at: datetime
    features_missing: list[str] = Field(default_factory=list)
    degraded: bool = False


class ShadowScore(BaseModel):
    """One shadow model's score for an event, next to the decision that was served (``scoring-shadow``)."""

    model_config = ConfigDict(frozen=True)

    model: Literal["fraud", "personalization"]
    event_id: str = Field(description="transaction_id (fraud) or event_id (personalization).")
    event_timestamp: datetime
    served_version: str
    served_score: float = Field(ge=0, le=1)
    served_action: str = Field(description="fraud: approve/review/decline; personalization: the relevance tier "
                                           "(high/medium/low).")
    shadow_version: str
    shadow_score: float = Field(ge=0, le=1)
    shadow_action: str
    scored_at: datetime
