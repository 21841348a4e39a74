"""What each field of a decision means, not only that it is there.

Features are written through ``RedisFeatureStore.apply_*`` (the stream's own update path) into a private Redis,
so the counts of ``INFO commandstats`` are this test's alone. The test model (``tests/support/artifacts.py``) is
driven by ``card_small_tx_count_1h``, ``card_amount_ratio_7d`` and ``card_country_is_new_7d``; its thresholds are
review 0.5 / decline 0.85.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from schemas.decisions import TIMING_FIELDS
from stream_scorer.config import Settings
from stream_scorer.core.feature_store import RedisFeatureStore
from stream_scorer.core.features import (
    FRAUD_FEATURE_NAMES,
    FRAUD_FEATURES,
    PERSONALIZATION_FEATURE_NAMES,
    PERSONALIZATION_FEATURES,
)
from tests.http_api.harness import command_calls, in_process_api
from tests.http_api.histories import BURST_SIZE, card_testing_burst, merchant_volume, quiet_card, rich_shopper
from tests.support.events import session_update, tx_update

pytestmark = pytest.mark.integration

SEED_FRAUD: dict[str, Any] = {
    "card_id": "card_00001234", "transaction_amount": 150.0, "merchant_id": "merchant_12345", "mcc_code": "5411",
    "country_code": "US"}
SEED_FRAUD_CURL: dict[str, Any] = {
    "card_id": "card_00001234", "transaction_amount": 150.0, "merchant_id": "merchant_high_risk", "mcc_code": "5816"}
SEED_PERSONALIZATION: dict[str, Any] = {
    "user_id": "user_00005678", "item_id": "item_electronics_001", "item_category": "electronics",
    "item_price": 299.99, "session_id": "session_abc123"}
SEED_BATCH: dict[str, Any] = {
    "model_type": "fraud_detection", "batch_id": "batch_20240902_001",
    "requests": [{"card_id": "card_1", "transaction_amount": 100}, {"card_id": "card_2", "transaction_amount": 500}]}
SEED_FRAUD_FIELDS = ("fraud_score", "risk_level", "confidence", "recommended_action", "explanation",
                     "top_risk_factors", "features_used", "latency_ms", "model_version", "feature_freshness_sec")
SEED_PERSONALIZATION_FIELDS = ("relevance_score", "conversion_probability", "engagement_score", "user_segment",
                               "behavioral_signals", "features_used", "latency_ms", "model_version")
REVIEW, DECLINE = 0.5, 0.85

BURST = {"card_id": "card_burst", "merchant_id": "merchant_burst", "mcc_code": "5999"}
QUIET = {"card_id": "card_quiet", "merchant_id": "merchant_grocer", "mcc_code": "5411"}
RICH = {"user_id": "user_rich", "session_id": "session_rich"}
CATEGORY = "electronics"


def _features_of(entities: set[str], specs: Any) -> list[str]:
    return sorted(f.name for f in specs if f.entity in entities)


@pytest.fixture
async def api(private_settings: Settings, private_redis_client: aioredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    """The API over a Redis holding a card-testing card, a quiet card with an established merchant and MCC, a
    rich shopper and (for the seed examples) the seed's card and user."""
    store = RedisFeatureStore(private_redis_client)
    now = time.time()
    await store.apply_transactions([tx_update(e) for e in [
        *card_testing_burst(BURST["card_id"], now=now, merchant_id=BURST["merchant_id"], mcc_code=BURST["mcc_code"]),
        *quiet_card(QUIET["card_id"], now=now, merchant_id=QUIET["merchant_id"], mcc_code=QUIET["mcc_code"]),
        *merchant_volume(QUIET["merchant_id"], QUIET["mcc_code"], now=now),
        *quiet_card(SEED_FRAUD["card_id"], now=now, merchant_id="merchant_12345", mcc_code="5411"),
    ]])
    await store.apply_session_events([session_update(e) for e in [
        *rich_shopper(RICH["user_id"], RICH["session_id"], now=now, category=CATEGORY),
        *rich_shopper(SEED_PERSONALIZATION["user_id"], SEED_PERSONALIZATION["session_id"], now=now),
    ]])
    async with in_process_api(private_settings) as (_, client):
        yield client


async def _fraud(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/score/fraud", json=body)
    assert r.status_code == 200, r.text
    decision: dict[str, Any] = r.json()
    return decision


async def _personalization(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/score/personalization", json=body)
    assert r.status_code == 200, r.text
    decision: dict[str, Any] = r.json()
    return decision


def _check_fraud_fields(d: dict[str, Any], model_version: str) -> None:
    assert set(SEED_FRAUD_FIELDS) <= set(d)
    p = d["fraud_score"]
    assert 0.0 <= p <= 1.0
    expected = ("high", "decline") if p >= DECLINE else ("medium", "review") if p >= REVIEW else ("low", "approve")
    assert (d["risk_level"], d["recommended_action"]) == expected
    assert d["confidence"] == pytest.approx(max(p, 1 - p), abs=2e-6)
    assert isinstance(d["explanation"], str) and len(d["explanation"]) > 20
    assert set(d["top_risk_factors"]) <= set(FRAUD_FEATURE_NAMES) and len(d["top_risk_factors"]) <= 3
    assert d["features_used"] == len(FRAUD_FEATURE_NAMES)
    assert 0 < d["latency_ms"] < 1000
    assert d["model_version"] == model_version
    assert d["degraded"] is False


async def _model_versions(client: httpx.AsyncClient) -> dict[str, str]:
    return {m["name"]: m["version"] for m in (await client.get("/models")).json()["models"]}


# --------------------------------------------------------------------------------------------- seed examples
@pytest.mark.parametrize("body", [SEED_FRAUD, SEED_FRAUD_CURL], ids=["readme-example", "curl-example"])
async def test_seed_fraud_example_returns_the_seed_fields_computed(api: httpx.AsyncClient,
                                                                   body: dict[str, Any]) -> None:
    d = await _fraud(api, body)
    _check_fraud_fields(d, (await _model_versions(api))["fraud"])
    assert d["feature_freshness_sec"] is not None and 0 <= d["feature_freshness_sec"] < 30  # the card was written
    assert "card_tx_count_7d" not in d["features_missing"]


async def test_seed_personalization_example_returns_the_seed_fields_computed(api: httpx.AsyncClient) -> None:
    d = await _personalization(api, SEED_PERSONALIZATION)
    assert set(SEED_PERSONALIZATION_FIELDS) <= set(d)
    for name in ("relevance_score", "conversion_probability", "engagement_score"):
        assert 0.0 <= d[name] <= 1.0, name
    assert d["engagement_score"] > 0  # a session with views and cart adds
    assert isinstance(d["user_segment"], str) and d["user_segment"] != "new_visitor"
    assert "cart_activity" in d["behavioral_signals"]
    assert d["features_used"] == len(PERSONALIZATION_FEATURE_NAMES)
    assert 0 < d["latency_ms"] < 1000
    assert d["model_version"] == (await _model_versions(api))["personalization"]


async def test_seed_batch_example_scores_each_request(api: httpx.AsyncClient) -> None:
    r = await api.post("/score/batch", json=SEED_BATCH)
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["batch_id"], d["model_type"], d["total"], d["succeeded"], d["failed"]) == (
        "batch_20240902_001", "fraud_detection", 2, 2, 0)
    assert [item["index"] for item in d["results"]] == [0, 1]
    version = (await _model_versions(api))["fraud"]
    for item in d["results"]:
        _check_fraud_fields(item["result"], version)
        assert item["result"]["feature_freshness_sec"] is None  # card_1 and card_2 have no stored features
    assert d["results"][0]["result"]["transaction_id"] != d["results"][1]["result"]["transaction_id"]


# ---------------------------------------------------------------------------------------- fraud field meaning
async def test_card_testing_scores_higher_than_a_quiet_card_and_says_why(api: httpx.AsyncClient) -> None:
    version = (await _model_versions(api))["fraud"]
    burst = await _fraud(api, {**BURST, "transaction_amount": 2.0, "country_code": "US"})
    quiet = await _fraud(api, {**QUIET, "transaction_amount": 50.0, "country_code": "US"})
    _check_fraud_fields(burst, version)
    _check_fraud_fields(quiet, version)

    assert burst["fraud_score"] > quiet["fraud_score"] + 0.2
    assert burst["recommended_action"] in ("review", "decline")
    assert quiet["recommended_action"] == "approve"
    assert burst["top_risk_factors"][0] == "card_small_tx_count_1h"
    assert "card_small_tx_count_1h" not in quiet["top_risk_factors"]
    assert burst["top_risk_factors"] != quiet["top_risk_factors"]
    # the explanation names the top factor in words, with its value, not as an identifier
    assert f"{BURST_SIZE} small transactions in the last hour" in burst["explanation"]
    assert "card_small_tx_count_1h" not in burst["explanation"]
    assert quiet["explanation"].startswith("Transaction appears legitimate")


async def test_top_risk_factors_follow_the_input(api: httpx.AsyncClient) -> None:
    """The same quiet card: an amount ten times its average abroad is riskier, and the factors say so."""
    usual = await _fraud(api, {**QUIET, "transaction_amount": 50.0, "country_code": "US"})
    unusual = await _fraud(api, {**QUIET, "transaction_amount": 500.0, "country_code": "NG"})
    assert unusual["fraud_score"] > usual["fraud_score"]
    assert "card_amount_ratio_7d" in unusual["top_risk_factors"]
    assert unusual["top_risk_factors"] != usual["top_risk_factors"]
    assert "10.0x the card's 7-day average" in unusual["explanation"]


async def test_confidence_is_the_probability_of_the_favoured_outcome(api: httpx.AsyncClient) -> None:
    for body in (BURST, QUIET, {"card_id": "card_nobody"}):
        for amount in (1.0, 50.0, 900.0):
            d = await _fraud(api, {**body, "transaction_amount": amount})
            p = d["fraud_score"]
            assert d["confidence"] == pytest.approx(max(p, 1.0 - p), abs=2e-6), d
            assert d["confidence"] >= 0.5


async def test_feature_freshness_is_the_age_of_the_written_features(api: httpx.AsyncClient) -> None:
    fresh = await _fraud(api, {**BURST, "transaction_amount": 2.0})
    assert fresh["feature_freshness_sec"] is not None and 0 <= fresh["feature_freshness_sec"] < 5
    unknown = await _fraud(api, {"card_id": "card_never_seen", "merchant_id": "merchant_never_seen",
                                 "mcc_code": "0742", "transaction_amount": 2.0})
    assert unknown["feature_freshness_sec"] is None


@pytest.mark.parametrize(("body", "without_data"), [
    ({**QUIET}, set()),
    ({**QUIET, "mcc_code": "0742"}, {"mcc"}),
    ({**BURST}, {"merchant", "mcc"}),  # the burst's merchant traffic is recent: not yet in the label-known window
    ({"card_id": "card_never_seen", "merchant_id": QUIET["merchant_id"], "mcc_code": QUIET["mcc_code"]}, {"card"}),
    ({"card_id": "card_never_seen"}, {"card", "merchant", "mcc"}),
], ids=["all-known", "unknown-mcc", "recent-merchant", "unknown-card", "nothing-known"])
async def test_features_missing_lists_exactly_the_entities_without_data(
        api: httpx.AsyncClient, body: dict[str, Any], without_data: set[str]) -> None:
    d = await _fraud(api, {**body, "transaction_amount": 20.0})
    assert len(d["features_missing"]) == len(set(d["features_missing"]))
    assert sorted(d["features_missing"]) == _features_of(without_data, FRAUD_FEATURES)


# ------------------------------------------------------------------------------ personalization field meaning
async def test_rich_session_and_new_visitor_get_different_answers(api: httpx.AsyncClient) -> None:
    item = {"item_id": f"item_{CATEGORY}_1", "item_category": CATEGORY, "item_price": 299.99}
    rich = await _personalization(api, {**RICH, **item})
    new = await _personalization(api, {"user_id": "user_first_visit", "session_id": "session_first", **item})

    assert rich["user_segment"] == "high_value_engaged" and new["user_segment"] == "new_visitor"
    assert {"high_engagement_session", "multi_page_session", "cart_activity", "recent_purchaser",
            "category_affinity"} <= set(rich["behavioral_signals"])
    assert new["behavioral_signals"] == []
    assert rich["engagement_score"] > 0.5 > new["engagement_score"]
    assert rich["conversion_probability"] > new["conversion_probability"]  # the model's driver: session carts
    assert rich["relevance_score"] > new["relevance_score"]
    assert sorted(rich["features_missing"]) == _features_of({"item"}, PERSONALIZATION_FEATURES)
    assert sorted(new["features_missing"]) == _features_of({"user", "session", "item"}, PERSONALIZATION_FEATURES)
    without_session = await _personalization(api, {"user_id": RICH["user_id"], **item})
    assert sorted(without_session["features_missing"]) == _features_of({"session", "item"},
                                                                        PERSONALIZATION_FEATURES)
    assert without_session["engagement_score"] < rich["engagement_score"]


# -------------------------------------------------------------------------------------------------- batches
def _at(offset_sec: float) -> str:
    return datetime.fromtimestamp(time.time() + offset_sec, UTC).isoformat()


def _without_timing(decision: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in decision.items() if k not in TIMING_FIELDS}


async def test_fraud_batch_is_one_redis_call_and_equals_single_answers(
        api: httpx.AsyncClient, private_redis_client: aioredis.Redis) -> None:
    ts = _at(-1)
    requests: list[dict[str, Any]] = []
    for i, entity in enumerate([BURST, QUIET, {"card_id": "card_nobody"}, SEED_FRAUD] * 5):
        requests.append({**entity, "transaction_amount": [2.0, 50.0, 500.0, 150.0][i % 4] + i,
                         "country_code": ["US", "NG"][i % 2], "transaction_id": f"batch-tx-{i}", "timestamp": ts})
    singles = [await _fraud(api, r) for r in requests]  # also loads the script on the server

    before = await command_calls(private_redis_client, "evalsha")
    r = await api.post("/score/batch", json={"model_type": "fraud_detection", "batch_id": "b-eq",
                                             "requests": [*requests, {"card_id": "card_bad"}]})
    after = await command_calls(private_redis_client, "evalsha")
    assert r.status_code == 200, r.text
    assert after - before == 1  # every card window and counter of the batch in one script call
    results = r.json()["results"]
    assert results[-1]["error"]["field"] == "transaction_amount"
    for single, item in zip(singles, results[:-1], strict=True):
        assert _without_timing(item["result"]) == _without_timing(single)
    assert len({s["fraud_score"] for s in singles}) > 3  # the inputs really differ


async def test_personalization_batch_is_one_redis_call_and_equals_single_answers(
        api: httpx.AsyncClient, private_redis_client: aioredis.Redis) -> None:
    ts = _at(-1)
    sessions: list[tuple[str, str | None, str]] = [
        (RICH["user_id"], RICH["session_id"], CATEGORY), (RICH["user_id"], None, "books"),
        ("user_first_visit", "session_first", CATEGORY)]
    requests = [{"user_id": user, "session_id": session, "item_id": f"item_{category}_{i % 3}",
                 "item_category": category, "item_price": 20.0 + 40 * i, "event_id": f"batch-ev-{i}",
                 "timestamp": ts}
                for i, (user, session, category) in enumerate(sessions * 4)]
    requests = [{k: v for k, v in r.items() if v is not None} for r in requests]
    singles = [await _personalization(api, r) for r in requests]

    before = await command_calls(private_redis_client, "evalsha")
    r = await api.post("/score/batch", json={"model_type": "personalization", "requests": requests})
    after = await command_calls(private_redis_client, "evalsha")
    assert r.status_code == 200, r.text
    assert after - before == 1
    for single, item in zip(singles, r.json()["results"], strict=True):
        assert _without_timing(item["result"]) == _without_timing(single)
    assert len({s["user_segment"] for s in singles}) >= 2
