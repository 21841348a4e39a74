"""Decoding raw Kafka records into events, or into a dead-letter reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    """``empty_message``, ``invalid_json`` or ``invalid_event``."""
    field: str | None
    detail: str


class Decoded(NamedTuple, Generic[M]):
    event: M | None
    rejection: Rejection | None


def decode(schema: type[M], value: bytes | None) -> Decoded[M]:
    if not value:
        return Decoded(None, Rejection("empty_message", None, "message has no value"))
    try:
        return Decoded(schema.model_validate_json(value), None)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        if err["type"] == "json_invalid" or err["type"] == "model_type":
            return Decoded(None, Rejection("invalid_json", None, f"not a JSON object: {err['msg']}"))
        field = ".".join(str(p) for p in err["loc"]) or None
        return Decoded(None, Rejection("invalid_event", field, f"{field}: {err['msg']}"))
