"""The acceptance path of the foundation: the real broker, the real worker process, the real Redis."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from schemas.decisions import TIMING_FIELDS
from stream_scorer.config import Settings
from tests.support.events import event_body, transaction_events
from tests.support.processes import consume, produce, worker_process

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


async def test_1000_transactions_give_1000_decisions_equal_to_http(
        settings: Settings, redis_client: aioredis.Redis, api: httpx.AsyncClient, tmp_path: Path) -> None:
    events = transaction_events(1000, start=time.time() - 3600, span_sec=3000, cards=40, merchants=10, seed=7)
    with worker_process(settings, tmp_path / "worker.log"):
        await produce(settings.kafka.bootstrap_servers, settings.topics.transactions,
                      [(e.card_id.encode(), event_body(e)) for e in events])
        records = await consume(settings.kafka.bootstrap_servers, [settings.topics.fraud_decisions],
                                until=1000, within=120)
    decisions = [orjson.loads(r.value) for r in records]
    by_id = {d["transaction_id"]: d for d in decisions}
    assert len(decisions) == 1000
    assert set(by_id) == {e.transaction_id for e in events}
    assert all(r.key == by_id[orjson.loads(r.value)["transaction_id"]]["transaction_id"].encode() or r.key
               for r in records)
    mismatches = []
    for e in events:
        response = await api.post("/score/fraud", content=event_body(e))
        assert response.status_code == 200, response.text
        http = response.json()
        stream = by_id[e.transaction_id]
        diff = {k: (stream[k], http[k]) for k in http if k not in TIMING_FIELDS and stream.get(k) != http[k]}
        if diff:
            mismatches.append((e.transaction_id, diff))
    assert not mismatches, mismatches[:3]
    # the stream really updated the features: later events of a card saw the earlier ones
    assert sum("card_tx_count_24h" not in d["features_missing"] for d in decisions) > 900
    assert await redis_client.exists(f"features:card:{events[0].card_id}:log")


async def test_malformed_messages_go_to_the_dlq_and_the_worker_goes_on(settings: Settings,
                                                                       redis_client: aioredis.Redis,
                                                                       tmp_path: Path) -> None:
    now = datetime.now(UTC).isoformat()
    good = {"card_id": "card_00001", "transaction_amount": 10.0, "timestamp": now}
    records = [
        (b"card_00001", orjson.dumps({**good, "transaction_id": "before"})),
        (b"card_00001", b"this is not json"),
        (b"card_00001", orjson.dumps({"transaction_amount": 12.5, "transaction_id": "no-card"})),
        (b"card_00001", orjson.dumps({**good, "transaction_id": "negative", "transaction_amount": -3})),
        (b"card_00001", orjson.dumps({**good, "transaction_id": "after"})),
    ]
    with worker_process(settings, tmp_path / "worker.log"):
        await produce(settings.kafka.bootstrap_servers, settings.topics.transactions, records)
        out = await consume(settings.kafka.bootstrap_servers, [settings.topics.fraud_decisions,
                                                               settings.topics.dlq], until=5, within=60)
    decisions = [orjson.loads(r.value)["transaction_id"] for r in out if r.topic == settings.topics.fraud_decisions]
    dead = [r for r in out if r.topic == settings.topics.dlq]
    assert decisions == ["before", "after"]
    assert len(dead) == 3
    headers = [{k: v.decode() for k, v in r.headers} for r in dead]
    assert [h["dlq.reason"] for h in headers] == ["invalid_json", "invalid_event", "invalid_event"]
    assert [h.get("dlq.field") for h in headers] == [None, "card_id", "transaction_amount"]
    assert [r.value for r in dead] == [v for _, v in records[1:4]]  # original bytes, untouched
    for h in headers:
        assert h["dlq.source.topic"] == settings.topics.transactions
        assert int(h["dlq.source.offset"]) >= 0 and "dlq.source.partition" in h
