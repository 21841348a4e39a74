"""Redis going away mid-run, against a real (private) ``redis-server`` that the test stops, freezes and restarts.

The app runs in process with its lifespan and is never restarted: it must answer every request within a bound
while Redis is down (degraded from the feature defaults, or 503 when configured), report the outage on /health
and /ready, and come back to real features by itself once Redis answers again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from stream_scorer.config import Settings
from stream_scorer.core.feature_store import RedisFeatureStore
from stream_scorer.core.features import FRAUD_FEATURES
from tests.http_api.harness import in_process_api, metric_value
from tests.http_api.histories import card_testing_burst
from tests.support.events import tx_update
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

ANSWER_WITHIN_SEC = 1.5
"""Bound on every answer while Redis is down: a few socket timeouts (0.2 s here), far from a hang. A Kubernetes
probe gives up after 1 s by default, and a liveness probe (/health) that times out restarts the pod."""
RECOVER_WITHIN_SEC = 5.0
STORE_FEATURES = [f.name for f in FRAUD_FEATURES if f.entity != "event"]
"""What a degraded fraud decision reports missing: every feature read from the store."""


async def _bounded(request: Awaitable[httpx.Response], what: str) -> httpx.Response:
    start = time.perf_counter()
    try:
        return await asyncio.wait_for(request, ANSWER_WITHIN_SEC)
    except TimeoutError:
        raise AssertionError(f"{what}: no answer within {ANSWER_WITHIN_SEC}s "
                             f"(waited {time.perf_counter() - start:.2f}s)") from None


async def _score(client: httpx.AsyncClient, card_id: str, what: str = "/score/fraud") -> httpx.Response:
    return await _bounded(client.post("/score/fraud", json={"card_id": card_id, "transaction_amount": 2.0,
                                                           "country_code": "US"}), what)


async def _metrics(client: httpx.AsyncClient) -> str:
    return (await _bounded(client.get("/metrics"), "/metrics")).text


async def _write_burst(redis: aioredis.Redis, card_id: str) -> None:
    await RedisFeatureStore(redis).apply_transactions([tx_update(e) for e in card_testing_burst(card_id)])


async def _restart(server: RedisServer, test_client: aioredis.Redis, card_id: str) -> None:
    """Start the server again (same port, empty: no persistence) and refill the card as the stream would."""
    server.start()
    await test_client.connection_pool.disconnect()  # the test's own pooled connections died with the server
    await _write_burst(test_client, card_id)


async def _assert_scores_with_real_features(client: httpx.AsyncClient, card_id: str) -> dict[str, Any]:
    r = await _score(client, card_id)
    assert r.status_code == 200, r.text
    d: dict[str, Any] = r.json()
    assert d["degraded"] is False
    assert "card_small_tx_count_1h" not in d["features_missing"]
    assert "card_small_tx_count_1h" in d["top_risk_factors"]
    assert d["feature_freshness_sec"] is not None
    return d


async def _wait_until_recovered(client: httpx.AsyncClient, card_id: str) -> float:
    """Seconds until a score is no longer degraded (every attempt bounded); fails after RECOVER_WITHIN_SEC."""
    start = time.perf_counter()
    while True:
        r = await _score(client, card_id, "/score/fraud while Redis comes back")
        if r.status_code == 200 and r.json()["degraded"] is False:
            return time.perf_counter() - start
        assert time.perf_counter() - start < RECOVER_WITHIN_SEC, f"still failing after restart: {r.text}"
        await asyncio.sleep(0.1)


async def test_stopped_redis_degrades_answers_then_recovers_without_restart(
        private_redis: RedisServer, private_settings: Settings, private_redis_client: aioredis.Redis) -> None:
    card = "card_burst_outage"
    await _write_burst(private_redis_client, card)
    async with in_process_api(private_settings) as (_, c):
        await _assert_scores_with_real_features(c, card)
        assert (await _bounded(c.get("/ready"), "/ready")).status_code == 200
        metrics = await _metrics(c)
        assert metric_value(metrics, "feature_store_up") == 1.0
        assert metric_value(metrics, "degraded_decisions_total", model="fraud") == 0.0

        private_redis.stop()
        for i in range(5):
            r = await _score(c, card, f"/score/fraud #{i} with Redis stopped")
            assert r.status_code == 200, r.text
            d = r.json()
            assert d["degraded"] is True
            assert d["features_missing"] == STORE_FEATURES
            assert d["feature_freshness_sec"] is None
            assert d["recommended_action"] in ("approve", "review", "decline") and 0 <= d["fraud_score"] <= 1
        r = await _bounded(c.post("/score/personalization", json={"user_id": "u1", "item_id": "i1"}),
                           "/score/personalization with Redis stopped")
        assert r.status_code == 200 and r.json()["degraded"] is True
        r = await _bounded(c.post("/score/batch", json={"model_type": "fraud_detection", "requests": [
            {"card_id": card, "transaction_amount": 1}, {"card_id": "other", "transaction_amount": 9}]}),
                           "/score/batch with Redis stopped")
        assert r.status_code == 200
        assert [item["result"]["degraded"] for item in r.json()["results"]] == [True, True]

        ready = await _bounded(c.get("/ready"), "/ready with Redis stopped")
        assert ready.status_code == 503 and ready.json()["redis"] == "down"
        health = await _bounded(c.get("/health"), "/health with Redis stopped")
        assert health.status_code == 200  # liveness: the process is fine
        assert health.json()["status"] == "degraded"
        assert health.json()["components"]["redis"]["status"] == "down"
        metrics = await _metrics(c)
        assert metric_value(metrics, "degraded_decisions_total", model="fraud") == 7.0  # 5 singles + a batch of 2
        assert metric_value(metrics, "degraded_decisions_total", model="personalization") == 1.0
        assert metric_value(metrics, "feature_store_up") == 0.0
        assert metric_value(metrics, "feature_store_errors_total", operation="fetch") >= 7.0

        await _restart(private_redis, private_redis_client, card)
        await _wait_until_recovered(c, card)
        await _assert_scores_with_real_features(c, card)  # the restarted server's scripts reloaded on demand
        assert (await _bounded(c.get("/ready"), "/ready after restart")).status_code == 200
        health = (await _bounded(c.get("/health"), "/health after restart")).json()
        assert health["status"] == "ok" and health["components"]["redis"]["status"] == "up"
        metrics = await _metrics(c)
        assert metric_value(metrics, "feature_store_up") == 1.0
        assert metric_value(metrics, "degraded_decisions_total", model="fraud") == 7.0


async def test_hung_redis_is_bounded_by_the_socket_timeout(
        private_redis: RedisServer, private_settings: Settings, private_redis_client: aioredis.Redis) -> None:
    """A frozen server accepts connections but never answers: the worst case for a request's latency."""
    card = "card_burst_hung"
    await _write_burst(private_redis_client, card)
    async with in_process_api(private_settings) as (_, c):
        await _assert_scores_with_real_features(c, card)
        private_redis.freeze()
        try:
            for i in range(3):
                r = await _score(c, card, f"/score/fraud #{i} with Redis frozen")
                assert r.status_code == 200 and r.json()["degraded"] is True
            assert (await _bounded(c.get("/ready"), "/ready with Redis frozen")).status_code == 503
            health = await _bounded(c.get("/health"), "/health with Redis frozen")
            assert health.json()["components"]["redis"]["status"] == "down"
        finally:
            private_redis.thaw()
        await _wait_until_recovered(c, card)
        await _assert_scores_with_real_features(c, card)  # nothing was lost: the server only paused


async def test_redis_down_status_503_fails_fast_with_retry_after(
        private_redis: RedisServer, private_settings: Settings, private_redis_client: aioredis.Redis) -> None:
    card = "card_burst_503"
    await _write_burst(private_redis_client, card)
    strict = private_settings.model_copy(update={"api": private_settings.api.model_copy(
        update={"redis_down_status": 503})})
    async with in_process_api(strict) as (_, c):
        await _assert_scores_with_real_features(c, card)

        private_redis.stop()
        for i in range(3):
            r = await _score(c, card, f"/score/fraud #{i} with Redis stopped (503 mode)")
            assert r.status_code == 503, r.text
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"] == "feature_store_unavailable"
        r = await _bounded(c.post("/score/personalization", json={"user_id": "u1", "item_id": "i1"}),
                           "/score/personalization with Redis stopped (503 mode)")
        assert r.status_code == 503 and r.json()["error"] == "feature_store_unavailable"
        r = await _bounded(c.post("/score/batch", json={"model_type": "fraud_detection", "requests": [
            {"card_id": card, "transaction_amount": 1}]}), "/score/batch with Redis stopped (503 mode)")
        assert r.status_code == 503 and "retry-after" in r.headers
        metrics = await _metrics(c)
        assert metric_value(metrics, "inference_errors_total", type="feature_store_unavailable",
                            endpoint="/score/fraud") == 3.0
        assert metric_value(metrics, "inference_requests_total", endpoint="/score/fraud", status="503") == 3.0
        assert metric_value(metrics, "degraded_decisions_total", model="fraud") == 0.0  # none served from defaults
        assert metric_value(metrics, "feature_store_up") == 0.0

        await _restart(private_redis, private_redis_client, card)
        await _wait_until_recovered(c, card)
        await _assert_scores_with_real_features(c, card)
        assert metric_value(await _metrics(c), "feature_store_up") == 1.0
