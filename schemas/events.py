"""Input events. The same models validate Kafka messages and HTTP request bodies.

Optional fields have documented defaults; ``transaction_id``/``event_id`` and ``timestamp`` are filled by the
adapter when absent (HTTP: a new id and the time of the request; stream: an id derived from topic, partition and
offset and the Kafka record timestamp, so a redelivered message keeps the same identity).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

UNKNOWN_MERCHANT = "merchant_unknown"
MAX_FUTURE_SEC = 86400.0
"""Event times may run ahead of this machine's clock by at most a day (clock skew), not more."""
UNKNOWN_MCC = "0000"

EntityId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^|\s]+$")]
"""Ids are opaque strings; ``|`` and whitespace are reserved by the feature store's encoding."""


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    @field_validator("timestamp", mode="after", check_fields=False)
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = _utc(value)
        if value.timestamp() > time.time() + MAX_FUTURE_SEC:
            # a far-future event would trim its card's whole real history from the windows
            raise ValueError("is more than a day in the future")
        return value


class TransactionEvent(_Event):
    """A card transaction: the body of ``POST /score/fraud`` and a message on the ``transactions`` topic."""

    card_id: EntityId = Field(description="Card identifier (the topic key).", examples=["card_00001234"])
    transaction_amount: float = Field(ge=0, le=1_000_000, allow_inf_nan=False,
                                      description="Amount in the card's currency.", examples=[150.0])
    merchant_id: EntityId = Field(default=UNKNOWN_MERCHANT, description="Merchant; default `merchant_unknown`.")
    mcc_code: str = Field(default=UNKNOWN_MCC, pattern=r"^[0-9]{4}$",
                          description="ISO 18245 merchant category code; default `0000` (unknown).")
    country_code: str | None = Field(default=None, pattern=r"^[A-Z]{2}$",
                                     description="ISO 3166 alpha-2 country of the transaction; default: the "
                                                 "card's usual country (no foreign-country signal).")
    transaction_id: EntityId | None = Field(default=None, description="Echoed in the decision; generated if absent.")
    timestamp: datetime | None = Field(default=None, description="Event time (ISO 8601 or epoch seconds); "
                                                                 "default: time of scoring.")


class FraudLabel(_Event):
    """A confirmed outcome for a transaction (chargeback or confirmed genuine) on the ``fraud-labels`` topic."""

    transaction_id: EntityId
    card_id: EntityId
    merchant_id: EntityId = UNKNOWN_MERCHANT
    mcc_code: str = Field(default=UNKNOWN_MCC, pattern=r"^[0-9]{4}$")
    transaction_timestamp: datetime = Field(description="Time of the labelled transaction.")
    is_fraud: bool = True
    timestamp: datetime | None = Field(default=None, description="Time the label became known.")

    @field_validator("transaction_timestamp", mode="after")
    @classmethod
    def _tx_utc(cls, value: datetime) -> datetime:
        return _utc(value)


SessionEventType = Literal["view", "cart", "purchase"]


class SessionEvent(_Event):
    """A shopping-session event: the body of ``POST /score/personalization`` and a message on ``sessions``.

    Over HTTP it asks "how relevant is this item to this user now"; on the stream each event is scored the same
    way and then updates the user's and the item's features.
    """

    user_id: EntityId = Field(examples=["user_00005678"])
    item_id: EntityId = Field(examples=["item_electronics_001"])
    item_category: str = Field(default="unknown", min_length=1, max_length=64, pattern=r"^[^|\s]+$",
                               examples=["electronics"])
    item_price: float = Field(default=0.0, ge=0, le=1_000_000, allow_inf_nan=False, examples=[299.99])
    session_id: EntityId | None = Field(default=None, description="Default: no current session.")
    event_type: SessionEventType = Field(default="view")
    event_id: EntityId | None = Field(default=None, description="Echoed in the decision; generated if absent.")
    timestamp: datetime | None = None
