"""The HTTP adapter against the real Redis: validation, defaults, batch, health, readiness, metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from http_api.app import create_app
from schemas.decisions import FraudDecision
from stream_scorer.config import RedisSettings, Settings
from stream_scorer.core.feature_store import RedisFeatureStore
from tests.support.events import transaction_events, tx_update

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(settings: Settings, redis_client: aioredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(settings) as c:
        yield c


def _client(settings: Settings) -> httpx.AsyncClient:
    app = create_app(settings)

    class _Lifespan(httpx.AsyncClient):
        async def __aenter__(self) -> httpx.AsyncClient:
            self._ctx = app.router.lifespan_context(app)
            await self._ctx.__aenter__()
            return await super().__aenter__()

        async def __aexit__(self, *exc: object) -> None:
            await super().__aexit__(*exc)  # type: ignore[arg-type]
            await self._ctx.__aexit__(None, None, None)

    return _Lifespan(transport=httpx.ASGITransport(app=app), base_url="http://api")


async def test_seed_request_with_form_content_type_is_scored(client: httpx.AsyncClient) -> None:
    body = '{"card_id": "card_00001234", "transaction_amount": 150.0, "merchant_id": "merchant_12345", ' \
           '"mcc_code": "5411", "country_code": "US"}'
    r = await client.post("/score/fraud", content=body,
                          headers={"content-type": "application/x-www-form-urlencoded", "x-request-id": "abc-123"})
    assert r.status_code == 200, r.text
    d = r.json()
    for field in ("fraud_score", "risk_level", "confidence", "recommended_action", "explanation",
                  "top_risk_factors", "features_used", "latency_ms", "model_version", "feature_freshness_sec"):
        assert field in d
    assert d["recommended_action"] in ("approve", "review", "decline")
    assert r.headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize(("body", "field"), [
    ({"transaction_amount": 5.0}, "card_id"),
    ({"card_id": "c1"}, "transaction_amount"),
    ({"card_id": "c1", "transaction_amount": -1}, "transaction_amount"),
    ({"card_id": "c1", "transaction_amount": "abc"}, "transaction_amount"),
    ({"card_id": "c1", "transaction_amount": 1, "mcc_code": "12"}, "mcc_code"),
    ({"card_id": "c1", "transaction_amount": 1, "country_code": "usa"}, "country_code"),
])
async def test_invalid_fraud_request_is_422_naming_the_field(client: httpx.AsyncClient, body: dict[str, object],
                                                             field: str) -> None:
    r = await client.post("/score/fraud", json=body)
    assert r.status_code == 422
    assert r.json()["field"] == field
    assert r.json()["error"] == "validation_error"


async def test_not_json_is_422(client: httpx.AsyncClient) -> None:
    r = await client.post("/score/fraud", content=b"card_id=1")
    assert r.status_code == 422
    assert r.json()["field"] == "body"


async def test_features_written_by_the_stream_are_used(settings: Settings, redis_client: aioredis.Redis,
                                                       client: httpx.AsyncClient) -> None:
    events = transaction_events(30, start=time.time() - 1800, span_sec=1700, cards=1)
    await RedisFeatureStore(redis_client).apply_transactions([tx_update(e) for e in events])
    r = await client.post("/score/fraud", json={"card_id": events[0].card_id, "transaction_amount": 2.0})
    d = r.json()
    assert "card_tx_count_1h" not in d["features_missing"]
    assert d["feature_freshness_sec"] is not None and d["feature_freshness_sec"] < 60
    unknown = (await client.post("/score/fraud", json={"card_id": "card_never_seen", "transaction_amount": 2.0})).json()
    assert "card_tx_count_1h" in unknown["features_missing"]
    assert unknown["feature_freshness_sec"] is None


async def test_batch_reports_bad_items_by_index(client: httpx.AsyncClient) -> None:
    r = await client.post("/score/batch", json={"model_type": "fraud_detection", "batch_id": "b-1", "requests": [
        {"card_id": "card_1", "transaction_amount": 100}, {"card_id": "card_2"},
        {"card_id": "card_3", "transaction_amount": 500}]})
    assert r.status_code == 200
    d = r.json()
    assert (d["batch_id"], d["succeeded"], d["failed"]) == ("b-1", 2, 1)
    assert d["results"][1]["error"]["field"] == "transaction_amount"
    assert 0 <= d["results"][2]["result"]["fraud_score"] <= 1
    for item in (d["results"][0], d["results"][2]):  # each result is a whole decision, as /score/fraud renders it
        FraudDecision.model_validate(item["result"])
        assert list(item["result"]) == list(FraudDecision.model_fields)
    too_many = {"model_type": "fraud_detection", "requests": [{"card_id": "c", "transaction_amount": 1}] * 1001}
    r = await client.post("/score/batch", json=too_many)
    assert r.status_code == 413
    assert r.json()["field"] == "requests"


async def test_personalization(client: httpx.AsyncClient) -> None:
    r = await client.post("/score/personalization", json={
        "user_id": "user_00005678", "item_id": "item_electronics_001", "item_category": "electronics",
        "item_price": 299.99, "session_id": "session_abc123"})
    assert r.status_code == 200, r.text
    d = r.json()
    assert 0 <= d["relevance_score"] <= 1 and 0 <= d["conversion_probability"] <= 1
    assert d["user_segment"] == "new_visitor"


async def test_health_ready_metrics_models(client: httpx.AsyncClient) -> None:
    await client.post("/score/fraud", json={"card_id": "c1", "transaction_amount": 3})
    health = (await client.get("/health")).json()
    assert health["status"] == "ok"
    assert health["components"]["redis"]["status"] == "up"
    assert health["components"]["models"]["fraud"]["version"] == "v1"
    assert (await client.get("/ready")).status_code == 200
    metrics = (await client.get("/metrics")).text
    for name in ("inference_requests_total", "inference_request_duration_seconds", "inference_active_requests",
                 "feature_fetch_duration_seconds", "model_inference_duration_seconds", "prediction_scores",
                 "inference_errors_total"):
        assert name in metrics
    assert 'inference_requests_total{endpoint="/score/fraud",status="200"} 1.0' in metrics
    models = (await client.get("/models")).json()["models"]
    assert {m["name"] for m in models} == {"fraud", "personalization"}


async def test_not_ready_without_models_and_degraded_without_redis(settings: Settings, tmp_path: Path) -> None:
    no_models = settings.model_copy(update={"model_dir": tmp_path})
    async with _client(no_models) as c:
        r = await c.get("/ready")
        assert r.status_code == 503
        assert r.json()["models"]["fraud"] == "missing"
        r = await c.post("/score/fraud", json={"card_id": "c1", "transaction_amount": 3})
        assert r.status_code == 503 and r.json()["error"] == "model_not_loaded"
    secret = "s3cret-password"
    down = settings.model_copy(update={"redis": RedisSettings(host="127.0.0.1", port=1, password=SecretStr(secret),
                                                              socket_timeout_sec=0.2)})
    async with _client(down) as c:
        r = await c.post("/score/fraud", json={"card_id": "c1", "transaction_amount": 3})
        assert r.status_code == 200 and r.json()["degraded"] is True
        health = await c.get("/health")
        assert health.json()["components"]["redis"]["status"] == "down"
        assert secret not in health.text
        assert (await c.get("/ready")).status_code == 503


async def test_server_timing_splits_features_model_explain(client: httpx.AsyncClient) -> None:
    r = await client.post("/score/fraud", json={"card_id": "c1", "transaction_amount": 3})
    stages = {part.split(";")[0].strip() for part in r.headers["server-timing"].split(",")}
    assert stages == {"features", "model", "explain"}


async def test_rate_limit_per_client_answers_429_with_retry_after(settings: Settings,
                                                                 redis_client: aioredis.Redis) -> None:
    limited = settings.model_copy(update={"api": settings.api.model_copy(
        update={"rate_limit_per_sec": 1.0, "rate_limit_burst": 3, "cors_origins": "https://shop.example"})})
    async with _client(limited) as c:
        body = {"card_id": "c1", "transaction_amount": 3}
        codes = [(await c.post("/score/fraud", json=body, headers={"x-api-key": "a"})).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        r = await c.post("/score/fraud", json=body, headers={"x-api-key": "a"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["error"] == "rate_limited"
        assert (await c.post("/score/fraud", json=body, headers={"x-api-key": "b"})).status_code == 200
        assert (await c.get("/health")).status_code == 200  # operations endpoints are not limited
        preflight = await c.options("/score/fraud", headers={"origin": "https://shop.example",
                                                             "access-control-request-method": "POST"})
        assert preflight.headers["access-control-allow-origin"] == "https://shop.example"


async def test_hot_path_and_fastapi_route_answer_alike(settings: Settings) -> None:
    """The plain-ASGI hot path and the FastAPI route functions behind it give the same answers and errors."""
    from schemas.decisions import TIMING_FIELDS
    from tests.http_api.harness import in_process_api

    body = {"card_id": "card_hot_path", "transaction_amount": 42.5, "transaction_id": "tx-hot",
            "timestamp": "2026-01-01T12:00:00Z"}
    bad = {"card_id": "card_hot_path", "transaction_amount": -1}
    session = {"user_id": "user_hot", "item_id": "item_1", "event_id": "ev-hot", "timestamp": "2026-01-01T12:00:00Z"}
    answers = []
    async with in_process_api(settings) as (app, client):
        for hot in (app.hot, None):
            app.hot = hot  # type: ignore[attr-defined]
            ok = await client.post("/score/fraud", json=body, headers={"X-Request-ID": "same-id"})
            invalid = await client.post("/score/fraud", json=bad)
            too_big = await client.post("/score/fraud", content=b"{" + b" " * 20_000 + b"}")
            personal = await client.post("/score/personalization", json=session)
            answers.append((ok, invalid, too_big, personal))
    (hot_ok, hot_bad, hot_big, hot_p), (api_ok, api_bad, api_big, api_p) = answers
    strip = lambda r: {k: v for k, v in r.json().items() if k not in TIMING_FIELDS}  # noqa: E731
    assert hot_ok.status_code == api_ok.status_code == 200
    assert strip(hot_ok) == strip(api_ok)
    for r in (hot_ok, api_ok):
        assert r.headers["x-request-id"] == "same-id" and "features;dur=" in r.headers["server-timing"]
        assert r.headers["content-type"] == "application/json"
    assert hot_bad.status_code == api_bad.status_code == 422 and hot_bad.json() == api_bad.json()
    assert hot_big.status_code == api_big.status_code == 413 and hot_big.json() == api_big.json()
    assert hot_p.status_code == api_p.status_code == 200 and strip(hot_p) == strip(api_p)


@pytest.mark.parametrize("path", ["/score/fraud", "/score/batch"])
async def test_a_client_gone_before_its_answer_is_499_not_a_server_error(settings: Settings, path: str,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    """The hot path and a FastAPI route: the body never completes, the client disconnects."""
    from http_api.errors import CLIENT_CLOSED_REQUEST
    from tests.http_api.harness import in_process_api, metric_value

    async with in_process_api(settings) as (app, client):
        messages = [{"type": "http.request", "body": b'{"card_id": "c', "more_body": True}, {"type": "http.disconnect"}]

        async def receive() -> dict[str, object]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            pass

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": [(b"content-type", b"application/json")], "client": ("1.2.3.4", 5),
                 "server": ("api", 80)}
        await app(scope, receive, send)
        metrics = (await client.get("/metrics")).text
    assert metric_value(metrics, "inference_requests_total", endpoint=path, status=str(CLIENT_CLOSED_REQUEST)) == 1
    assert metric_value(metrics, "inference_requests_total", endpoint=path, status="500") == 0
    assert not [r for r in caplog.records if r.getMessage() == "unhandled error"]
