"""The package's Python client against the real API process (``python -m stream_scorer api``) and the real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from schemas.decisions import TIMING_FIELDS
from stream_scorer.client import AsyncScoringClient, ScoringAPIError, ScoringClient
from stream_scorer.config import RedisSettings, Settings
from stream_scorer.core.feature_store import RedisFeatureStore
from stream_scorer.core.features import FRAUD_FEATURE_NAMES
from stream_scorer.core.redis_client import FeatureRedis
from tests.conftest import TEST_REDIS_DB
from tests.http_api.histories import card_testing_burst
from tests.support.events import tx_update
from tests.support.processes import cli_process, free_port, settings_env
from tests.support.services import ServiceAddresses

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

READY_TIMEOUT_SEC = 60.0
SEED_PERSONALIZATION = {"item_category": "electronics", "item_price": 299.99, "session_id": "session_abc123"}


@dataclass(frozen=True)
class RunningAPI:
    base_url: str
    stderr_path: Path
    settings: Settings

    def log_entries(self) -> list[dict[str, Any]]:
        """The process's JSON log lines so far (stderr)."""
        entries = []
        for line in self.stderr_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries

    def wait_for_log(self, request_id: str, logger: str, within: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            for entry in self.log_entries():
                if entry.get("request_id") == request_id and entry.get("logger") == logger:
                    return entry
            if time.monotonic() > deadline:
                raise AssertionError(f"no {logger} line for request {request_id} in {self.stderr_path}:\n"
                                     f"{self.stderr_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def api_process(services: ServiceAddresses, model_dir: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAPI]:
    """``python -m stream_scorer api`` on a free port, configured by the environment like a deployment."""
    settings = Settings(model_dir=model_dir, redis=RedisSettings(host=services.redis_host, port=services.redis_port,
                                                                 db=TEST_REDIS_DB))
    port = free_port()
    env = {**settings_env(settings), "API_HOST": "127.0.0.1", "API_PORT": str(port)}
    logs = tmp_path_factory.mktemp("api")
    stderr_path = logs / "api.stderr.jsonl"
    base_url = f"http://127.0.0.1:{port}"
    with cli_process("api", env, f"{base_url}/ready", logs / "api.stdout", stderr_path=stderr_path,
                     ready_timeout=READY_TIMEOUT_SEC, stop_timeout=15):
        yield RunningAPI(base_url, stderr_path, settings)


def _write_burst(settings: Settings, card_id: str) -> None:
    """A card-testing history for ``card_id``, written through the stream's update path."""

    async def write() -> None:
        redis = FeatureRedis(host=settings.redis.host, port=settings.redis.port, db=settings.redis.db,
                             decode_responses=True)
        try:
            await RedisFeatureStore(redis).apply_transactions([tx_update(e) for e in card_testing_burst(card_id)])
        finally:
            await redis.aclose()

    asyncio.run(write())


def _fresh_card() -> str:
    return f"card_e2e_{uuid.uuid4().hex[:12]}"


def _without_timing(decision: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in decision.items() if k not in TIMING_FIELDS}


def _flush(settings: Settings) -> None:
    """Empty the test database: other tests' events leave merchant and MCC counters (the default merchant's
    too) that would give a fresh card a feature freshness."""

    async def flush() -> None:
        redis = aioredis.Redis(host=settings.redis.host, port=settings.redis.port, db=settings.redis.db)
        try:
            await redis.flushdb()
        finally:
            await redis.aclose()

    asyncio.run(flush())


def test_sync_client_covers_every_endpoint(api_process: RunningAPI) -> None:
    card = _fresh_card()
    _flush(api_process.settings)
    _write_burst(api_process.settings, card)
    with ScoringClient(api_process.base_url) as client:
        fraud = client.score_fraud(card_id=card, transaction_amount=2.0, country_code="US")
        assert fraud["degraded"] is False
        assert fraud["recommended_action"] in ("review", "decline")
        assert fraud["top_risk_factors"][0] == "card_small_tx_count_1h"
        assert fraud["features_used"] == len(FRAUD_FEATURE_NAMES)
        assert fraud["feature_freshness_sec"] is not None and fraud["feature_freshness_sec"] < 30

        quiet = client.score_fraud(card_id=_fresh_card(), transaction_amount=2.0, country_code="US")
        assert quiet["fraud_score"] < fraud["fraud_score"]
        assert quiet["feature_freshness_sec"] is None

        personalization = client.score_personalization(user_id="user_00005678", item_id="item_electronics_001",
                                                       **SEED_PERSONALIZATION)
        assert personalization["user_segment"] == "new_visitor"
        assert 0 <= personalization["relevance_score"] <= 1

        batch = client.score_batch("fraud_detection", [{"card_id": card, "transaction_amount": 2.0},
                                                       {"card_id": "card_2", "transaction_amount": 500}],
                                   batch_id="batch-e2e")
        assert (batch["batch_id"], batch["succeeded"], batch["failed"]) == ("batch-e2e", 2, 0)
        assert batch["results"][0]["result"]["recommended_action"] in ("review", "decline")

        health = client.health()
        assert health["status"] == "ok" and health["components"]["redis"]["status"] == "up"
        models = client.models()["models"]
        assert {m["name"] for m in models} == {"fraud", "personalization"}
        assert all(m["version"] == "v1" for m in models)


async def test_async_client_answers_like_the_sync_client(api_process: RunningAPI) -> None:
    card = _fresh_card()
    await asyncio.to_thread(_write_burst, api_process.settings, card)
    fixed = {"transaction_id": f"tx-{card}", "timestamp": datetime.now(UTC).isoformat(), "country_code": "US"}
    async with AsyncScoringClient(api_process.base_url) as client:
        fraud = await client.score_fraud(card_id=card, transaction_amount=2.0, **fixed)
        personalization = await client.score_personalization(user_id="user_async", item_id="item_books_1",
                                                             item_category="books", event_id="ev-async")
        batch = await client.score_batch("personalization", [{"user_id": "user_async", "item_id": "item_books_1"}])
        health = await client.health()
        models = await client.models()
    with ScoringClient(api_process.base_url) as sync_client:
        again = await asyncio.to_thread(sync_client.score_fraud, card, 2.0, **fixed)
    assert _without_timing(fraud) == _without_timing(again)  # same event, same decision (and decision_id)
    assert fraud["top_risk_factors"][0] == "card_small_tx_count_1h"
    assert personalization["event_id"] == "ev-async"
    assert batch["succeeded"] == 1 and batch["model_type"] == "personalization"
    assert health["components"]["redis"]["status"] == "up"
    assert {m["name"] for m in models["models"]} == {"fraud", "personalization"}


async def test_invalid_request_raises_scoring_api_error_naming_the_field(api_process: RunningAPI) -> None:
    with ScoringClient(api_process.base_url) as client, pytest.raises(ScoringAPIError) as sync_error:
        client.score_fraud(card_id="card_1", transaction_amount=-5.0)
    assert sync_error.value.status_code == 422
    assert sync_error.value.field == "transaction_amount"
    assert sync_error.value.body["error"] == "validation_error"
    async with AsyncScoringClient(api_process.base_url) as aclient:
        with pytest.raises(ScoringAPIError) as async_error:
            await aclient.score_personalization(user_id="user_1", item_id="item_1", item_price="free")
        assert async_error.value.status_code == 422 and async_error.value.field == "item_price"
        with pytest.raises(ScoringAPIError) as too_large:
            await aclient.score_batch("fraud_detection", [{"card_id": "c", "transaction_amount": 1}] * 1001)
        assert too_large.value.status_code == 413 and too_large.value.field == "requests"


def test_request_id_is_echoed_and_logged_without_the_raw_card_id(api_process: RunningAPI) -> None:
    card = _fresh_card()
    responses: list[httpx.Response] = []
    http = httpx.Client(base_url=api_process.base_url, timeout=5.0, event_hooks={"response": [responses.append]})
    with ScoringClient(client=http) as client:
        client.score_fraud(card_id=card, transaction_amount=12.5, merchant_id="merchant_e2e")
    generated = responses[-1].headers["x-request-id"]
    assert len(generated) >= 16

    chosen = f"e2e-{uuid.uuid4().hex}"
    http = httpx.Client(base_url=api_process.base_url, timeout=5.0, headers={"X-Request-ID": chosen},
                        event_hooks={"response": [responses.append]})
    with ScoringClient(client=http) as client:
        client.score_fraud(card_id=card, transaction_amount=12.5)
    assert responses[-1].headers["x-request-id"] == chosen

    for request_id in (generated, chosen):
        access = api_process.wait_for_log(request_id, "http_api.access")
        assert access["path"] == "/score/fraud" and access["status"] == 200 and access["method"] == "POST"
        assert access["duration_ms"] > 0
        assert card not in json.dumps(access)
    assert card not in api_process.stderr_path.read_text(errors="replace")  # no log line carries the raw id
