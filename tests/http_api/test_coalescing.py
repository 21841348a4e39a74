"""Micro-batching of concurrent requests: through the API against a private Redis, and the coalescer alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from http_api.coalescer import Coalescer
from schemas.decisions import TIMING_FIELDS
from stream_scorer.config import Settings
from stream_scorer.core.feature_store import RedisFeatureStore
from tests.http_api.harness import command_calls, in_process_api
from tests.http_api.histories import card_testing_burst, merchant_volume, quiet_card
from tests.support.events import tx_update

CONCURRENT = 50


@pytest.fixture
async def app_and_client(private_settings: Settings, private_redis_client: aioredis.Redis
                         ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    now = time.time()
    await RedisFeatureStore(private_redis_client).apply_transactions([tx_update(e) for e in [
        *card_testing_burst("card_burst", now=now), *quiet_card("card_quiet", now=now),
        *merchant_volume("merchant_grocer", "5411", now=now)]])
    async with in_process_api(private_settings) as app_client:
        yield app_client


def _requests(n: int) -> list[dict[str, Any]]:
    ts = datetime.fromtimestamp(time.time() - 1, UTC).isoformat()
    cards = ["card_burst", "card_quiet", "card_nobody", "card_burst", "card_quiet"]
    return [{"card_id": cards[i % len(cards)], "transaction_amount": round(1.0 + 7.3 * i, 2),
             "merchant_id": "merchant_grocer" if i % 2 else "merchant_burst", "mcc_code": "5411",
             "country_code": ["US", "GB", "NG"][i % 3], "transaction_id": f"tx-coalesce-{i}", "timestamp": ts}
            for i in range(n)]


def _without_timing(decision: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in decision.items() if k not in TIMING_FIELDS}


async def _post(client: httpx.AsyncClient, body: dict[str, Any], request_id: str) -> httpx.Response:
    return await client.post("/score/fraud", json=body, headers={"x-request-id": request_id})


@pytest.mark.integration
async def test_concurrent_requests_share_feature_store_calls_and_answer_as_alone(
        app_and_client: tuple[FastAPI, httpx.AsyncClient], private_redis_client: aioredis.Redis) -> None:
    _, client = app_and_client
    bodies = _requests(CONCURRENT)
    alone = []
    for i, body in enumerate(bodies):
        r = await _post(client, body, f"alone-{i}")
        assert r.status_code == 200, r.text
        alone.append(r.json())

    before = await command_calls(private_redis_client, "evalsha")
    responses = await asyncio.wait_for(asyncio.gather(*(_post(client, b, f"together-{i}")
                                                        for i, b in enumerate(bodies))), 30)
    calls = await command_calls(private_redis_client, "evalsha") - before

    assert calls < CONCURRENT, f"{calls} feature-store calls for {CONCURRENT} concurrent requests"
    for i, (r, single) in enumerate(zip(responses, alone, strict=True)):
        assert r.status_code == 200, r.text
        assert r.headers["x-request-id"] == f"together-{i}"  # each answer keeps its own request id
        assert "features;dur=" in r.headers["server-timing"]
        assert _without_timing(r.json()) == _without_timing(single), f"request {i} differs when coalesced"
    assert len({d["fraud_score"] for d in alone}) > 5


@pytest.mark.integration
async def test_a_cancelled_client_does_not_break_the_others(
        app_and_client: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    app, client = app_and_client
    bodies = _requests(10)
    alone = [(await _post(client, b, f"alone-{i}")).json() for i, b in enumerate(bodies)]

    # hold the next scoring call until one of its clients has gone away
    scorer = app.state.services.scorer
    score_transactions = scorer.score_transactions
    entered, release = asyncio.Event(), asyncio.Event()

    async def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await release.wait()
        return await score_transactions(*args, **kwargs)

    monkeypatch.setattr(scorer, "score_transactions", held)
    tasks = [asyncio.create_task(_post(client, b, f"together-{i}")) for i, b in enumerate(bodies)]
    await asyncio.wait_for(entered.wait(), 5)
    tasks[3].cancel()
    early = asyncio.create_task(_post(client, bodies[0], "cancelled-before-batching"))
    await asyncio.sleep(0)
    early.cancel()
    release.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks, early, return_exceptions=True), 10)

    assert isinstance(results[3], asyncio.CancelledError) and isinstance(results[-1], asyncio.CancelledError)
    for i, result in enumerate(results[:-1]):
        if i == 3:
            continue
        assert isinstance(result, httpx.Response) and result.status_code == 200, result
        assert _without_timing(result.json()) == _without_timing(alone[i])
    monkeypatch.undo()
    after = await _post(client, bodies[3], "after-cancel")
    assert after.status_code == 200 and _without_timing(after.json()) == _without_timing(alone[3])


# ----------------------------------------------------------------------------------------- the coalescer alone
class _RecordingCall:
    """A batch call that records the batches it was given; optionally held, or failing."""

    def __init__(self, *, fail: Exception | None = None, hold: asyncio.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.entered = asyncio.Event()
        self.fail = fail
        self.hold = hold

    async def __call__(self, items: Sequence[int]) -> list[str]:
        self.batches.append(list(items))
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.fail is not None:
            raise self.fail
        return [f"outcome-{i}" for i in items]


async def test_submits_of_one_loop_iteration_share_one_call_and_get_their_own_outcome() -> None:
    call = _RecordingCall()
    coalescer: Coalescer[int, str] = Coalescer(call, max_batch=64)
    outcomes = await asyncio.gather(*(coalescer.submit(i) for i in range(10)))
    assert outcomes == [f"outcome-{i}" for i in range(10)]
    assert call.batches == [list(range(10))]


async def test_a_lone_submit_is_not_held_back() -> None:
    call = _RecordingCall()
    coalescer: Coalescer[int, str] = Coalescer(call)
    for i in range(3):
        assert await asyncio.wait_for(coalescer.submit(i), 1) == f"outcome-{i}"
    assert call.batches == [[0], [1], [2]]


async def test_batches_are_capped_at_max_batch() -> None:
    call = _RecordingCall()
    coalescer: Coalescer[int, str] = Coalescer(call, max_batch=64)
    outcomes = await asyncio.gather(*(coalescer.submit(i) for i in range(150)))
    assert outcomes == [f"outcome-{i}" for i in range(150)]
    assert [len(b) for b in call.batches] == [64, 64, 22]
    assert sorted(i for b in call.batches for i in b) == list(range(150))


async def test_an_exception_in_the_batch_call_reaches_every_waiter() -> None:
    boom = ConnectionError("feature store gone")
    coalescer: Coalescer[int, str] = Coalescer(_RecordingCall(fail=boom), max_batch=4)
    results = await asyncio.wait_for(asyncio.gather(*(coalescer.submit(i) for i in range(10)),
                                                    return_exceptions=True), 2)
    assert results == [boom] * 10
    # and the coalescer keeps working afterwards
    healthy: Coalescer[int, str] = Coalescer(_RecordingCall(), max_batch=4)
    assert await healthy.submit(1) == "outcome-1"


async def test_a_cancelled_waiter_leaves_the_rest_of_its_batch_intact() -> None:
    hold = asyncio.Event()
    call = _RecordingCall(hold=hold)
    coalescer: Coalescer[int, str] = Coalescer(call)
    tasks = [asyncio.create_task(coalescer.submit(i)) for i in range(5)]
    await asyncio.wait_for(call.entered.wait(), 1)
    tasks[2].cancel()
    hold.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 2)
    assert isinstance(results[2], asyncio.CancelledError)
    assert [r for i, r in enumerate(results) if i != 2] == ["outcome-0", "outcome-1", "outcome-3", "outcome-4"]
    assert await asyncio.wait_for(coalescer.submit(9), 1) == "outcome-9"


async def test_a_batch_call_breaking_its_contract_fails_the_waiters_instead_of_hanging_them() -> None:
    """One outcome per item is the call's contract; if it ever returns fewer, every waiter must still get an
    answer (an error), because nothing else bounds how long an HTTP request waits for its future."""

    async def short(items: Sequence[int]) -> list[str]:
        return ["only-one"]

    coalescer: Coalescer[int, str] = Coalescer(short)
    try:
        results = await asyncio.wait_for(asyncio.gather(*(coalescer.submit(i) for i in range(3)),
                                                        return_exceptions=True), 1)
    except TimeoutError:
        pytest.fail("waiters still pending 1 s after their batch call returned (see http_api/coalescer.py _run)")
    assert all(isinstance(r, Exception) for r in results), results


async def test_aclose_waits_for_the_batches_in_flight_even_when_their_clients_left() -> None:
    hold = asyncio.Event()
    call = _RecordingCall(hold=hold)
    coalescer: Coalescer[int, str] = Coalescer(call)
    waiter = asyncio.create_task(coalescer.submit(1))
    await asyncio.wait_for(call.entered.wait(), 5)
    waiter.cancel()  # the client went away; its batch still holds a feature-store connection
    closing = asyncio.create_task(coalescer.aclose())
    await asyncio.sleep(0.05)
    assert not closing.done()  # shutdown waits for the batch instead of abandoning it
    hold.set()
    await asyncio.wait_for(closing, 5)
    assert call.batches == [[1]]
