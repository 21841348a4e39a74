"""The dead-letter policy: what goes to ``scoring-dlq`` and with which context.

The record keeps the original key and value bytes untouched; the context travels in headers
(``dlq.reason``, ``dlq.field``, ``dlq.error``, ``dlq.source.topic``, ``dlq.source.partition``,
``dlq.source.offset``, ``dlq.source.timestamp``), the convention Kafka Connect uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    reason: str


MAX_DEAD_LETTER_BYTES = 512 * 1024
"""Larger values are truncated (header ``dlq.value.truncated`` = the original length): a record the broker
accepted on the input topic may exceed the producer's request size once headers are added."""


def dead_letter(*, key: bytes | None, value: bytes | None, source_topic: str, partition: int, offset: int,
                timestamp: float | None, reason: str, field: str | None, error: str) -> DeadLetter:
    headers = [
        ("dlq.reason", reason.encode()),
        ("dlq.error", error.encode()[:1000]),
        ("dlq.source.topic", source_topic.encode()),
        ("dlq.source.partition", str(partition).encode()),
        ("dlq.source.offset", str(offset).encode()),
    ]
    if field is not None:
        headers.append(("dlq.field", field.encode()))
    if timestamp is not None:
        headers.append(("dlq.source.timestamp", repr(timestamp).encode()))
    if value is not None and len(value) > MAX_DEAD_LETTER_BYTES:
        headers.append(("dlq.value.truncated", str(len(value)).encode()))
        value = value[:MAX_DEAD_LETTER_BYTES]
    return DeadLetter(key, value, headers, reason)


def headers_dict(headers: Iterable[tuple[str, bytes]]) -> dict[str, str]:
    """Headers of a consumed DLQ record as a dict (for tools and tests)."""
    return {k: v.decode(errors="replace") for k, v in headers}
