"""Every topic the worker touches, declared once; names come from settings, bodies from ``schemas``."""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TopicT

from stream_scorer.config import TopicSettings

OUTPUT_PARTITIONS = 6
"""Partitions of the output topics (decisions, scores, DLQ, shadow) when the worker creates them."""


@dataclass(frozen=True)
class Topics:
    transactions: TopicT
    sessions: TopicT
    fraud_labels: TopicT
    fraud_decisions: TopicT
    personalization_scores: TopicT
    dlq: TopicT
    shadow: TopicT


def declare_topics(app: faust.App, names: TopicSettings) -> Topics:
    """Raw bytes in and out: we decode with pydantic ourselves so a bad message reaches the DLQ untouched."""

    def topic(name: str, partitions: int | None = None) -> TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                         partitions=partitions)

    return Topics(
        transactions=topic(names.transactions, names.input_partitions),
        sessions=topic(names.sessions, names.input_partitions),
        fraud_labels=topic(names.fraud_labels, names.input_partitions),
        fraud_decisions=topic(names.fraud_decisions),
        personalization_scores=topic(names.personalization_scores),
        dlq=topic(names.dlq),
        shadow=topic(names.shadow),
    )


async def ensure_topics(bootstrap_servers: str, names: TopicSettings, *, replication_factor: int = 1) -> list[str]:
    """Create every topic that does not exist yet (inputs with ``input_partitions``); returns those created.

    Runs before the consumer subscribes, so the first metadata it fetches already lists every input topic.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    inputs = {names.transactions, names.sessions, names.fraud_labels}
    every = inputs | {names.fraud_decisions, names.personalization_scores, names.dlq, names.shadow}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = sorted(every - existing)
        if missing:
            try:
                await admin.create_topics([
                    NewTopic(name, num_partitions=names.input_partitions if name in inputs else OUTPUT_PARTITIONS,
                             replication_factor=replication_factor) for name in missing])
            except TopicAlreadyExistsError:
                pass  # another worker created it first
        return missing
    finally:
        await admin.close()
