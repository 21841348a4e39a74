"""Delivery guarantees of the streaming scorer on the real broker, with the worker as real processes.

Every wait is bounded; a failure message carries the tail of the worker logs. Decisions are read back from the
output topics from the beginning (``TopicReader``), grouped by ``transaction_id``.
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord

from schemas.decisions import TIMING_FIELDS
from schemas.events import TransactionEvent
from stream_scorer.bootstrap import MODEL_FEATURES
from stream_scorer.config import RedisSettings, Settings
from stream_scorer.core.feature_store import RedisFeatureStore
from stream_scorer.core.features import FRAUD_FEATURE_NAMES, fraud_features
from stream_scorer.core.redis_client import create_redis
from stream_scorer.models.registry import ModelRegistry
from stream_scorer.worker.dead_letters import headers_dict
from stream_scorer.worker.topics import OUTPUT_PARTITIONS
from tests.support.events import event_body, transaction_events
from tests.support.processes import (
    TopicReader,
    free_port,
    log_tail,
    produce,
    produce_paced,
    with_worker,
    worker_process,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DELIVERY_REDIS_DB = 10
"""Not conftest's db 9: these tests run for minutes and every other integration run on this machine flushes
db 9 when it starts a test, which would wipe the feature state under a running worker."""

Records = list[ConsumerRecord[bytes, bytes]]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    redis = RedisSettings(host=settings.redis.host, port=settings.redis.port, db=DELIVERY_REDIS_DB)
    return settings.model_copy(update={"redis": redis})


# ------------------------------------------------------------------------------------------------------ helpers
def _tx(event: TransactionEvent) -> str:
    return str(event.transaction_id)


def _records(events: Sequence[TransactionEvent]) -> list[tuple[bytes | None, bytes]]:
    return [(e.card_id.encode(), event_body(e)) for e in events]


def _by_tx(records: Records) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for decision in (orjson.loads(r.value) for r in records):
        out.setdefault(decision["transaction_id"], []).append(decision)
    return out


def _duplicates(by_tx: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    return {tx: len(ds) for tx, ds in by_tx.items() if len(ds) > 1}


def _without_timing(decision: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in decision.items() if k not in TIMING_FIELDS}


def _logs(*paths: Path) -> str:
    return "\n".join(map(log_tail, paths))


def _own_worker(settings: Settings, tmp_path: Path, name: str) -> Settings:
    """Its own data dir and metrics port (same consumer group: ``WORKER_APP_ID`` is kept)."""
    return with_worker(settings, data_dir=tmp_path / name, metrics_port=free_port())


async def _get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=2) as client:
        return await client.get(f"http://127.0.0.1:{port}{path}")


def _recent_events(n: int, *, cards: int, merchants: int, seed: int) -> list[TransactionEvent]:
    return transaction_events(n, start=time.time() - 3600, span_sec=3000, cards=cards, merchants=merchants, seed=seed)


# ------------------------------------------------------------------------------------------------------- (a)
async def test_10000_transactions_give_10000_decisions_equal_to_http_batch(
        settings: Settings, redis_client: aioredis.Redis, api: httpx.AsyncClient, tmp_path: Path) -> None:
    events = _recent_events(10_000, cards=500, merchants=50, seed=11)
    log = tmp_path / "worker.log"
    worker = _own_worker(settings, tmp_path, "worker")
    with worker_process(worker, log):
        async with TopicReader(settings.kafka.bootstrap_servers, [settings.topics.fraud_decisions]) as reader:
            await produce(settings.kafka.bootstrap_servers, settings.topics.transactions, _records(events))
            done = await reader.wait_until(lambda rs: len(_by_tx(rs)) >= len(events), within=120)
            assert done, f"{len(_by_tx(reader.records))} of {len(events)} decided in 120 s\n{_logs(log)}"
            await reader.settle(2.0)
            records = list(reader.records)
        metrics = (await _get(worker.worker.metrics_port, "/metrics")).text
    # whole fetched batches reached the processor, none larger than WORKER_BATCH_SIZE
    topic = re.escape(settings.topics.transactions)
    batches = float(re.findall(rf'^stream_batch_size_count{{topic="{topic}"}} (\S+)$', metrics, re.M)[0])
    batched = float(re.findall(rf'^stream_batch_size_sum{{topic="{topic}"}} (\S+)$', metrics, re.M)[0])
    assert batched == len(events) and batches <= len(events) / 5, f"{batched} events in {batches} batches"
    assert float(re.findall(rf'^stream_batch_size_bucket{{le="500.0",topic="{topic}"}} (\S+)$', metrics,
                            re.M)[0]) == batches
    by_tx = _by_tx(records)
    assert set(by_tx) == {_tx(e) for e in events}
    assert len(records) == len(events), f"duplicates: {list(_duplicates(by_tx).items())[:10]}\n{_logs(log)}"
    # each decision is on the partition of its card, as the Java client's default partitioner would put it
    every = list(range(OUTPUT_PARTITIONS))
    misplaced = [r for r in records if r.key is None or r.partition != DefaultPartitioner()(r.key, every, every)]
    assert not misplaced and {r.key for r in records} == {e.card_id.encode() for e in events}
    mismatches = []
    for start in range(0, len(events), 1000):
        chunk = events[start:start + 1000]
        response = await api.post("/score/batch", json={
            "model_type": "fraud_detection",
            "requests": [orjson.loads(event_body(e)) for e in chunk]})
        assert response.status_code == 200, response.text
        for e, item in zip(chunk, response.json()["results"], strict=True):
            http = item["result"]
            stream = by_tx[_tx(e)][0]
            diff = {k: (stream.get(k), http[k]) for k in http if k not in TIMING_FIELDS and stream.get(k) != http[k]}
            if diff:
                mismatches.append((_tx(e), diff))
    assert not mismatches, f"{len(mismatches)} decisions differ from HTTP, e.g. {mismatches[:3]}"
    # the stream's own updates were seen: most events of a card read the earlier ones
    assert sum("card_tx_count_1h" not in by_tx[_tx(e)][0]["features_missing"] for e in events) > 9000


# ------------------------------------------------------------------------------------------------------- (b)
async def test_a_cards_quick_transactions_see_its_velocity_grow(settings: Settings, redis_client: aioredis.Redis,
                                                                tmp_path: Path) -> None:
    """Observable: the feature vector each decision was scored with. Decisions carry no feature values, so the
    vector is recomputed with ``fraud_features`` from the card's state in Redis read as of the event's own time
    (the worker's read rule), and the decision's ``fraud_score`` must be the model's score of exactly that
    vector; ``features_missing`` names the card features for the first transaction only.

    Two cards: one sends its 5 transactions in one burst (one batch: the in-batch path), the other one per
    second (one batch each: the Redis path). Both must read 0, 1, 2, 3, 4 prior transactions in the last hour.
    """
    now = time.time()
    burst = [TransactionEvent(card_id="card_burst", transaction_amount=20.0 + i, merchant_id="merchant_1",
                              mcc_code="5411", country_code="US", transaction_id=f"burst-{i}",
                              timestamp=datetime.fromtimestamp(now - 10 + i, UTC)) for i in range(5)]
    log = tmp_path / "worker.log"
    paced: list[TransactionEvent] = []
    with worker_process(settings, log):
        async with TopicReader(settings.kafka.bootstrap_servers, [settings.topics.fraud_decisions]) as reader:
            await produce(settings.kafka.bootstrap_servers, settings.topics.transactions, _records(burst))
            for i in range(5):
                event = TransactionEvent(card_id="card_paced", transaction_amount=30.0 + i, merchant_id="merchant_2",
                                         mcc_code="5812", country_code="GB", transaction_id=f"paced-{i}",
                                         timestamp=datetime.now(UTC))
                paced.append(event)
                await produce(settings.kafka.bootstrap_servers, settings.topics.transactions, _records([event]))
                if i < 4:
                    await asyncio.sleep(1.0)
            done = await reader.wait_until(lambda rs: len(_by_tx(rs)) >= 10, within=60)
            assert done, f"{len(_by_tx(reader.records))} of 10 decided\n{_logs(log)}"
            by_tx = _by_tx(reader.records)
    store_redis = create_redis(settings.redis)
    registry = ModelRegistry(settings.model_dir, expected_features=MODEL_FEATURES, use_onnx=settings.use_onnx)
    registry.refresh("fraud")
    model = registry.get("fraud")
    count_1h = FRAUD_FEATURE_NAMES.index("card_tx_count_1h")
    try:
        store = RedisFeatureStore(store_redis)
        for events in (burst, paced):
            times = [e.timestamp.timestamp() for e in events if e.timestamp is not None]
            states = await store.fetch_fraud_states([(e.card_id, e.merchant_id, e.mcc_code, ts)
                                                     for e, ts in zip(events, times, strict=True)])
            vectors = np.array([fraud_features(ts, e.transaction_amount, e.country_code, s)
                                for e, ts, s in zip(events, times, states, strict=True)])
            decisions = [by_tx[_tx(e)][0] for e in events]
            assert [int(v) for v in vectors[:, count_1h]] == [0, 1, 2, 3, 4], events[0].card_id
            expected = [round(float(s), 6) for s in model.score_and_explain(vectors)[0]]  # what serving uses
            assert [d["fraud_score"] for d in decisions] == pytest.approx(expected, abs=2e-6), events[0].card_id
            assert ["card_tx_count_1h" in d["features_missing"] for d in decisions] == [True] + [False] * 4
    finally:
        await store_redis.aclose()


# ------------------------------------------------------------------------------------------------------- (c)
@pytest.mark.slow
async def test_a_worker_killed_mid_stream_and_restarted_loses_nothing(settings: Settings,
                                                                      redis_client: aioredis.Redis,
                                                                      tmp_path: Path) -> None:
    events = _recent_events(5000, cards=300, merchants=30, seed=12)
    settings = _own_worker(settings, tmp_path, "worker")
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    bootstrap = settings.kafka.bootstrap_servers
    with worker_process(settings, logs[0]) as first:
        async with TopicReader(bootstrap, [settings.topics.fraud_decisions]) as reader:
            producing = asyncio.ensure_future(produce_paced(bootstrap, settings.topics.transactions,
                                                            _records(events), rate=1000))
            try:
                reached = await reader.wait_until(lambda rs: len(_by_tx(rs)) >= 0.3 * len(events), within=60)
                assert reached, f"{len(_by_tx(reader.records))} decided before the kill\n{_logs(logs[0])}"
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=10)
                decided_at_kill = len(_by_tx(reader.records))
                restarted = time.monotonic()
                with worker_process(settings, logs[1]):
                    done = await reader.wait_until(lambda rs: len(_by_tx(rs)) >= len(events), within=150)
                    recovery = time.monotonic() - restarted
                    assert done, (f"{len(_by_tx(reader.records))} of {len(events)} decided after the restart\n"
                                  f"{_logs(*logs)}")
                    await reader.settle(3.0)
            finally:
                await producing
            records = list(reader.records)
    by_tx = _by_tx(records)
    missing = {_tx(e) for e in events} - set(by_tx)
    assert not missing, f"{len(missing)} inputs without a decision, e.g. {sorted(missing)[:5]}\n{_logs(*logs)}"
    assert decided_at_kill < len(events), "the worker finished before it was killed: not a mid-stream kill"
    different = {tx: ds for tx, ds in by_tx.items()
                 if len(ds) > 1 and any(_without_timing(d) != _without_timing(ds[0]) for d in ds[1:])}
    assert not different, f"redelivered decisions differ: {list(different.items())[:2]}"
    print(f"\nSIGKILL at {decided_at_kill} decided: {len(records) - len(by_tx)} duplicate decisions "
          f"({len(_duplicates(by_tx))} transactions), all identical; all decided {recovery:.1f} s after restart")


# ------------------------------------------------------------------------------------------------------- (d)
async def test_two_workers_share_the_partitions_and_one_stopping_loses_nothing(
        settings: Settings, redis_client: aioredis.Redis, tmp_path: Path) -> None:
    events = _recent_events(4000, cards=300, merchants=30, seed=13)
    half = len(events) // 2
    a, b = _own_worker(settings, tmp_path, "worker-a"), _own_worker(settings, tmp_path, "worker-b")
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    bootstrap = settings.kafka.bootstrap_servers
    topic = settings.topics.transactions
    with worker_process(a, logs[0]), worker_process(b, logs[1]) as proc_b:
        assignments = await _wait_for_split(topic, [a.worker.metrics_port, b.worker.metrics_port], within=60)
        assert assignments, f"the two workers did not split {topic}\n{_logs(*logs)}"
        async with TopicReader(bootstrap, [settings.topics.fraud_decisions]) as reader:
            sent = [0]
            producing = asyncio.ensure_future(produce_paced(bootstrap, topic, _records(events), rate=500,
                                                            progress=lambda n: sent.__setitem__(0, n)))
            try:
                first_half = {_tx(e) for e in events[:half]}
                steady = await reader.wait_until(
                    lambda rs: sent[0] >= half and first_half <= set(_by_tx(rs)), within=60)
                assert steady, f"first half not decided: {len(_by_tx(reader.records))}\n{_logs(*logs)}"
                before_stop = list(reader.records)
                proc_b.send_signal(signal.SIGTERM)
                stopped = time.monotonic()
                exit_code = await asyncio.get_running_loop().run_in_executor(None, proc_b.wait, 60)
                stop_sec = time.monotonic() - stopped
                done = await reader.wait_until(lambda rs: len(_by_tx(rs)) >= len(events), within=90)
                assert done, f"{len(_by_tx(reader.records))} of {len(events)} decided\n{_logs(*logs)}"
                await reader.settle(3.0)
            finally:
                await producing
            records = list(reader.records)
    steady_dups = _duplicates(_by_tx(before_stop))
    assert not steady_dups, (f"{sum(steady_dups.values()) - len(steady_dups)} duplicate decisions in the steady "
                             f"state (two workers, no rebalance): {list(steady_dups.items())[:10]}")
    by_tx = _by_tx(records)
    missing = {_tx(e) for e in events} - set(by_tx)
    assert not missing, f"{len(missing)} inputs without a decision, e.g. {sorted(missing)[:5]}\n{_logs(*logs)}"
    dups = _duplicates(by_tx)
    different = {tx for tx in dups if any(_without_timing(d) != _without_timing(by_tx[tx][0]) for d in by_tx[tx])}
    assert not different, f"redelivered decisions differ: {sorted(different)[:5]}"
    assert exit_code == 0, f"SIGTERM exit code {exit_code}\n{_logs(logs[1])}"
    print(f"\ntwo workers {assignments}: {len(before_stop)} decisions before the SIGTERM, no duplicates; the "
          f"stopped worker exited in {stop_sec:.1f} s; {len(records) - len(by_tx)} duplicates after the stop")


async def _wait_for_split(topic: str, ports: list[int], *, within: float) -> list[list[str]] | None:
    """Each worker's partitions of ``topic`` once every worker has some and together they cover the topic."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assigned = [(await _get(port, "/ready")).json()["assigned_partitions"] for port in ports]
        owned = [sorted(p for p in ps if re.fullmatch(rf"{re.escape(topic)}\[\d+\]", p)) for ps in assigned]
        covered = [p for ps in owned for p in ps]
        if all(owned) and len(covered) == len(set(covered)) == 3:
            return owned
        await asyncio.sleep(0.5)
    return None


# ------------------------------------------------------------------------------------------------------- (e)
async def test_poison_messages_land_on_the_dlq_with_reasons(settings: Settings, redis_client: aioredis.Redis,
                                                            tmp_path: Path) -> None:
    events = _recent_events(1980, cards=200, merchants=20, seed=14)
    rng = random.Random(14)
    now = datetime.now(UTC).isoformat()
    kinds: list[tuple[dict[str, object] | None, str, str | None]] = [  # body (None: not JSON), reason, field
        (None, "invalid_json", None),
        ({"transaction_amount": 5.0, "timestamp": now}, "invalid_event", "card_id"),
        ({"card_id": "card_p", "transaction_amount": -2.5, "timestamp": now}, "invalid_event", "transaction_amount"),
    ]
    poison_kinds = [(b'{"card_id": "card_x", "transaction_amount": %d' % i if body is None
                     else orjson.dumps({**body, "transaction_id": f"poison-{i}"}), reason, field)
                    for i in range(20) for body, reason, field in [kinds[i % 3]]]
    records = _records(events)
    for value, _, _ in poison_kinds:
        records.insert(rng.randrange(len(records) + 1), (b"card_poison", value))
    log = tmp_path / "worker.log"
    topics = [settings.topics.fraud_decisions, settings.topics.dlq]
    with worker_process(settings, log):
        async with TopicReader(settings.kafka.bootstrap_servers, topics) as reader:
            await produce(settings.kafka.bootstrap_servers, settings.topics.transactions, records)
            done = await reader.wait_until(lambda rs: len(rs) >= len(records), within=90)
            assert done, f"{len(reader.records)} of {len(records)} outputs\n{_logs(log)}"
            await reader.settle(2.0)
            out = list(reader.records)
    decided = _by_tx([r for r in out if r.topic == settings.topics.fraud_decisions])
    dead = [r for r in out if r.topic == settings.topics.dlq]
    assert set(decided) == {_tx(e) for e in events}, _logs(log)
    assert len(dead) == len(poison_kinds), [headers_dict(r.headers) for r in dead]
    expected = sorted((value, reason, field) for value, reason, field in poison_kinds)
    got = sorted((r.value, (h := headers_dict(r.headers))["dlq.reason"], h.get("dlq.field")) for r in dead)
    assert got == expected
    for r in dead:
        h = headers_dict(r.headers)
        assert h["dlq.source.topic"] == settings.topics.transactions
        assert int(h["dlq.source.offset"]) >= 0 and 0 <= int(h["dlq.source.partition"]) < 3
        assert h["dlq.error"]


# --------------------------------------------------------------------------------------------------- lag gauge
async def test_worker_metrics_show_consumer_lag_per_input_partition(settings: Settings,
                                                                     redis_client: aioredis.Redis,
                                                                     tmp_path: Path) -> None:
    events = _recent_events(600, cards=50, merchants=10, seed=15)
    settings = _own_worker(settings, tmp_path, "worker")
    log = tmp_path / "worker.log"
    topic = settings.topics.transactions
    pattern = re.compile(rf'^stream_consumer_lag\{{partition="(\d+)",topic="{re.escape(topic)}"\}} (\S+)$', re.M)
    lags: dict[str, float] = {}
    with worker_process(settings, log):
        async with TopicReader(settings.kafka.bootstrap_servers, [settings.topics.fraud_decisions]) as reader:
            await produce(settings.kafka.bootstrap_servers, topic, _records(events))
            assert await reader.wait_until(lambda rs: len(_by_tx(rs)) >= len(events), within=60), _logs(log)
        deadline = time.monotonic() + 20  # one or two 5 s ticks after the last commit
        while time.monotonic() < deadline:
            text = (await _get(settings.worker.metrics_port, "/metrics")).text
            lags = {p: float(v) for p, v in pattern.findall(text)}
            if set(lags) == {"0", "1", "2"} and not any(lags.values()):
                break
            await asyncio.sleep(0.5)
    assert set(lags) == {"0", "1", "2"}, f"lag series for {topic}: {lags}\n{_logs(log)}"
    assert lags == {"0": 0.0, "1": 0.0, "2": 0.0}, f"lag after everything was consumed: {lags}\n{_logs(log)}"
