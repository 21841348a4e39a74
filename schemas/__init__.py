"""The wire contract of stream-scorer: events on Kafka, decisions, HTTP bodies."""

from schemas.decisions import FraudDecision, PersonalizationDecision, RecommendedAction, RiskLevel
from schemas.events import FraudLabel, SessionEvent, SessionEventType, TransactionEvent

__all__ = [
    "FraudDecision",
    "FraudLabel",
    "PersonalizationDecision",
    "RecommendedAction",
    "RiskLevel",
    "SessionEvent",
    "SessionEventType",
    "TransactionEvent",
]
