"""JSON Schema of every wire model and an AsyncAPI 3.0 document of the topics (``stream-scorer schemas``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from schemas.decisions import FraudDecision, PersonalizationDecision, ShadowScore
from schemas.events import FraudLabel, SessionEvent, TransactionEvent

MODELS: dict[str, type[BaseModel]] = {
    "TransactionEvent": TransactionEvent,
    "SessionEvent": SessionEvent,
    "FraudLabel": FraudLabel,
    "FraudDecision": FraudDecision,
    "PersonalizationDecision": PersonalizationDecision,
    "ShadowScore": ShadowScore,
}


_OUTPUTS = frozenset({"FraudDecision", "PersonalizationDecision", "ShadowScore"})


def json_schemas() -> dict[str, dict[str, Any]]:
    return {name: model.model_json_schema(mode="serialization" if name in _OUTPUTS else "validation")
            for name, model in MODELS.items()}


def asyncapi(topics: dict[str, str], bootstrap_servers: str) -> dict[str, Any]:
    """``topics``: the role names of ``TopicSettings`` mapped to the configured topic names."""
    schemas = json_schemas()
    channel_specs = {
        "transactions": ("TransactionEvent", "card_id", "receive"),
        "sessions": ("SessionEvent", "user_id", "receive"),
        "fraud_labels": ("FraudLabel", "card_id", "receive"),
        "fraud_decisions": ("FraudDecision", "card_id", "send"),
        "personalization_scores": ("PersonalizationDecision", "user_id", "send"),
        "shadow": ("ShadowScore", "the event id", "send"),
        "dlq": (None, "the original key", "send"),
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for role, (model, key, action) in channel_specs.items():
        message: dict[str, Any] = {"contentType": "application/json",
                                   "bindings": {"kafka": {"key": {"type": "string", "description": key}}}}
        if model is None:
            message["payload"] = {"description": "the original bytes of a rejected record; the reason and its "
                                                 "source (topic, partition, offset) travel in dlq.* headers"}
        else:
            message["payload"] = {"$ref": f"#/components/schemas/{model}"}
        channels[role] = {"address": topics[role], "messages": {"record": message}}
        operations[f"{action}_{role}"] = {"action": action, "channel": {"$ref": f"#/channels/{role}"}}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "stream-scorer", "version": "1",
                 "description": "The worker receives events and sends decisions (and dead letters)."},
        "servers": {"kafka": {"host": bootstrap_servers.split(",")[0], "protocol": "kafka"}},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas},
    }
