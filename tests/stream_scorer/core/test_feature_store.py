"""The Redis feature store applies the same update rules as the in-memory state used by training."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis

from stream_scorer.config import Settings
from stream_scorer.core import feature_store
from stream_scorer.core.feature_cache import SlowFeatureCache
from stream_scorer.core.feature_state import InMemoryFeatureState
from stream_scorer.core.feature_store import READ_PART_WINDOWS, RedisFeatureStore
from stream_scorer.core.features import DAY, fraud_features, personalization_features
from stream_scorer.core.window import card_member
from tests.support.events import fraud_labels, session_events, session_update, transaction_events, tx_update

pytestmark = pytest.mark.integration


async def test_fraud_features_from_redis_equal_the_offline_replay(settings: Settings,
                                                                  redis_client: aioredis.Redis) -> None:
    store = RedisFeatureStore(redis_client)
    memory = InMemoryFeatureState()
    start = time.time() - 45 * DAY
    events = transaction_events(1500, start=start, span_sec=45 * DAY, cards=15, merchants=6)
    labels = sorted(fraud_labels(events, share=0.05, delay_sec=2 * DAY), key=lambda p: p[0])
    compared = 0
    pending = list(labels)
    for e in events:
        ts = e.timestamp.timestamp()  # type: ignore[union-attr]
        arrived = [label for at, label in pending if at < ts]
        pending = [(at, label) for at, label in pending if at >= ts]
        for label in arrived:
            memory.apply_label(label)
        await store.apply_labels(arrived)
        offline = fraud_features(ts, e.transaction_amount, e.country_code,
                                 memory.fraud_state(e.card_id, e.merchant_id, e.mcc_code))
        [state] = await store.fetch_fraud_states([(e.card_id, e.merchant_id, e.mcc_code, ts)])
        online = fraud_features(ts, e.transaction_amount, e.country_code, state)
        assert online == offline, e.transaction_id
        compared += 1
        memory.apply_transaction(tx_update(e))
        assert await store.apply_transactions([tx_update(e)]) == 1
    assert compared == len(events)
    # the replay reached the label-based features, not only defaults
    assert any(f > 0 for f in offline[19:20])


async def test_updates_are_idempotent_per_event(settings: Settings, redis_client: aioredis.Redis) -> None:
    store = RedisFeatureStore(redis_client)
    events = transaction_events(50, start=time.time() - DAY, span_sec=DAY - 60, cards=3)
    updates = [tx_update(e) for e in events]
    assert await store.apply_transactions(updates) == 50
    last = events[-1]
    key = (last.card_id, last.merchant_id, last.mcc_code, time.time())
    [before] = await store.fetch_fraud_states([key])
    assert await store.apply_transactions(updates) == 0
    [after] = await store.fetch_fraud_states([key])
    assert after.card_history == before.card_history
    assert after.merchant.counts == before.merchant.counts


async def test_card_logs_keep_what_the_in_memory_windows_keep(settings: Settings,
                                                                redis_client: aioredis.Redis) -> None:
    """Out-of-order transactions over 30 days, redelivered, in batches: each card's log holds exactly the
    in-memory state's window (same entries, same arrival order, same trimming), and its update time."""
    store = RedisFeatureStore(redis_client)
    memory = InMemoryFeatureState()
    events = transaction_events(800, start=time.time() - 30 * DAY, span_sec=30 * DAY, cards=7)
    shuffled = sorted(events, key=lambda e: (e.timestamp.timestamp() // (3 * DAY), e.transaction_id))  # type: ignore[union-attr]
    updates = [tx_update(e) for e in shuffled]
    for u in updates:
        memory.apply_transaction(u)
    delivered = updates[:500] + updates[450:]  # an overlapping redelivery
    added, started = 0, time.time()
    for i in range(0, len(delivered), 61):
        added += await store.apply_transactions(delivered[i:i + 61])
    assert added == len(updates)
    for card, stored in memory.cards.items():
        log = await redis_client.get(f"features:card:{card}:log")
        stamp, *entries = log.split("\n")
        assert entries == [f"{tx.member}|{tx.ts!r}" for tx in stored]
        assert started <= float(stamp) <= time.time()
        assert await redis_client.ttl(f"features:card:{card}:log") > 0
    assert sum(len(w) for w in memory.cards.values()) < len(updates)  # the retention trimmed some


async def test_a_transaction_id_is_added_once(settings: Settings, redis_client: aioredis.Redis) -> None:
    store = RedisFeatureStore(redis_client)
    [e] = transaction_events(1, start=time.time() - 60, span_sec=1, cards=1)
    assert await store.apply_transactions([tx_update(e)]) == 1
    changed = e.model_copy(update={"transaction_amount": e.transaction_amount + 1})
    assert await store.apply_transactions([tx_update(changed)]) == 0
    [state] = await store.fetch_fraud_states([(e.card_id, e.merchant_id, e.mcc_code, time.time())])
    assert state.card_history[1::2] == [e.timestamp.timestamp()]  # type: ignore[union-attr]
    assert state.card_history[0].split("|")[1] == repr(e.transaction_amount)


async def test_a_window_of_an_earlier_version_is_read_then_moved_to_the_log(settings: Settings,
                                                                          redis_client: aioredis.Redis) -> None:
    """A card whose window is still the earlier versions' sorted set: read from it (time order, the hash's update
    time), its transactions not added again, and moved to the log by the card's first update."""
    store = RedisFeatureStore(redis_client)
    events = transaction_events(5, start=time.time() - DAY, span_sec=DAY - 60, cards=1)
    card = events[0].card_id
    legacy = {card_member(e.transaction_id, e.transaction_amount, e.country_code, e.merchant_id):
              e.timestamp.timestamp() for e in events[:4]}  # type: ignore[union-attr]
    await redis_client.zadd(f"features:card:{card}:tx", legacy)
    await redis_client.hset(f"features:card:{card}", "_updated_at", "1234.5")
    key = (card, events[0].merchant_id, events[0].mcc_code, time.time())
    [before] = await store.fetch_fraud_states([key])
    assert before.card_history == [x for member, ts in legacy.items() for x in (member, ts)]
    assert before.updated_at == 1234.5
    assert await store.apply_transactions([tx_update(events[1]), tx_update(events[4])]) == 1  # events[1]: known
    assert not await redis_client.exists(f"features:card:{card}:tx")
    [after] = await store.fetch_fraud_states([key])
    memory = InMemoryFeatureState()
    for e in events:
        memory.apply_transaction(tx_update(e))
    assert after.card_history == memory.fraud_state(card, "", "").card_history
    assert after.updated_at is not None and after.updated_at > 1234.5


async def test_personalization_features_from_redis_equal_the_offline_replay(settings: Settings,
                                                                            redis_client: aioredis.Redis) -> None:
    store = RedisFeatureStore(redis_client)
    memory = InMemoryFeatureState()
    events = session_events(600, start=time.time() - 20 * DAY, span_sec=20 * DAY, users=6)
    for e in events:
        ts = e.timestamp.timestamp()  # type: ignore[union-attr]
        offline = personalization_features(ts, e.item_id, e.item_category, e.item_price, e.session_id,
                                           memory.personalization_state(e.user_id, e.item_id))
        [state] = await store.fetch_personalization_states([(e.user_id, e.item_id, ts)])
        assert personalization_features(ts, e.item_id, e.item_category, e.item_price, e.session_id,
                                        state) == offline
        memory.apply_session_event(session_update(e))
        await store.apply_session_events([session_update(e)])


async def test_one_round_trip_per_batch(settings: Settings, redis_client: aioredis.Redis) -> None:
    store = RedisFeatureStore(redis_client)
    events = transaction_events(200, start=time.time() - DAY, span_sec=DAY - 60)
    await store.apply_transactions([tx_update(e) for e in events])
    keys = [(e.card_id, e.merchant_id, e.mcc_code, time.time()) for e in events]
    await store.fetch_fraud_states(keys[:1])  # loads the script

    async def client_commands() -> dict[str, int]:
        stats = await redis_client.info("commandstats")
        return {name: int(v["calls"]) for name, v in stats.items() if isinstance(v, dict)}

    before = await client_commands()
    states = await store.fetch_fraud_states(keys)
    after = await client_commands()
    assert len(states) == 200 and sum(len(s.card_history) // 2 for s in states) > 200
    cards = len({e.card_id for e in events})
    parts = -(-cards // READ_PART_WINDOWS)  # one call per part, all written at once
    assert after["cmdstat_evalsha"] - before["cmdstat_evalsha"] == parts
    # inside it: one GET per distinct card's log (however many events it has), one HGETALL per distinct merchant /
    # MCC, nothing else
    distinct = len({e.merchant_id for e in events}) + len({e.mcc_code for e in events})
    assert after["cmdstat_get"] - before["cmdstat_get"] == cards
    assert {name: n - before.get(name, 0) for name, n in after.items() if n != before.get(name, 0)} == {
        "cmdstat_evalsha": parts, "cmdstat_get": cards, "cmdstat_hgetall": distinct, "cmdstat_info": 1}
    assert after["cmdstat_hgetall"] - before["cmdstat_hgetall"] == distinct


async def test_slow_counters_are_cached_for_the_ttl_and_windows_never(settings: Settings,
                                                                       redis_client: aioredis.Redis) -> None:
    now = [1000.0]
    cache = SlowFeatureCache(300, clock=lambda: now[0])
    store = RedisFeatureStore(redis_client, cache=cache)
    events = transaction_events(20, start=time.time() - DAY, span_sec=DAY - 60, cards=2, merchants=1)
    key = (events[0].card_id, events[0].merchant_id, events[0].mcc_code, time.time())
    [first] = await store.fetch_fraud_states([key])
    await store.apply_transactions([tx_update(e) for e in events])
    [cached] = await store.fetch_fraud_states([key])
    assert cached.merchant.counts == first.merchant.counts == {}  # merchant counters served from the cache
    assert len(cached.card_history) > 0  # the card window is read from Redis every time
    now[0] += 301
    [expired] = await store.fetch_fraud_states([key])
    assert sum(expired.merchant.counts["tx"].values()) == 20


async def test_scripts_are_reloaded_after_a_script_flush(settings: Settings, redis_client: aioredis.Redis) -> None:
    store = RedisFeatureStore(redis_client)
    events = transaction_events(5, start=time.time() - 3600, span_sec=3000, cards=1)
    await store.apply_transactions([tx_update(e) for e in events[:3]])
    await redis_client.script_flush()
    assert await store.apply_transactions([tx_update(e) for e in events[3:]]) == 2
    [state] = await store.fetch_fraud_states([(events[0].card_id, events[0].merchant_id, events[0].mcc_code,
                                               time.time())])
    assert len(state.card_history) == 2 * 5  # member, time


async def test_a_read_in_parts_equals_a_read_in_one_part(settings: Settings, redis_client: aioredis.Redis,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts pipelined on one connection, also after the server lost its scripts (every part fails, then all are
    sent again): the same states as one call for the whole batch."""
    store = RedisFeatureStore(redis_client)
    events = transaction_events(300, start=time.time() - DAY, span_sec=DAY - 60, cards=40, merchants=9)
    await store.apply_transactions([tx_update(e) for e in events])
    keys = [(e.card_id, e.merchant_id, e.mcc_code, time.time() - i) for i, e in enumerate(events)]
    monkeypatch.setattr(feature_store, "READ_PART_WINDOWS", 1000)
    whole = await store.fetch_fraud_states(keys)
    monkeypatch.setattr(feature_store, "READ_PART_WINDOWS", 7)
    await redis_client.script_flush()
    parts = await store.fetch_fraud_states(keys)
    again = await store.fetch_fraud_states(keys)
    assert parts == again == whole
    assert sum(len(s.card_history) // 2 for s in whole) > len(events) and any(s.merchant.counts for s in whole)


async def test_daily_counters_keep_only_the_retention(settings: Settings, redis_client: aioredis.Redis) -> None:
    """A merchant seen once a week for ten weeks keeps in Redis exactly the days the in-memory rules keep."""
    store = RedisFeatureStore(redis_client)
    memory = InMemoryFeatureState()
    start = time.time() - 70 * DAY
    events = [e.model_copy(update={"merchant_id": "merchant_sparse", "transaction_id": f"w{i}"})
              for i, e in enumerate(transaction_events(10, start=start, span_sec=70 * DAY, cards=3))]
    for e in events:
        memory.apply_transaction(tx_update(e))
        await store.apply_transactions([tx_update(e)])
    fields = await redis_client.hgetall("features:merchant:merchant_sparse")
    redis_days = sorted(int(f.split(":")[1]) for f in fields if f.startswith("tx:"))
    assert redis_days == sorted(memory.merchants["merchant_sparse"].counts["tx"])
    assert len(redis_days) < 10


async def _stored(redis_client: aioredis.Redis) -> dict[str, object]:
    """Every key's content and whether it expires (``_updated_at`` stamps only checked present: they are the time
    of the write)."""
    out: dict[str, object] = {}
    for key in sorted(await redis_client.keys("*")):
        expires = await redis_client.ttl(key) > 0
        kind = await redis_client.type(key)
        if kind == "zset":
            out[key] = expires, await redis_client.zrange(key, 0, -1, withscores=True)
        elif kind == "string":  # a card log: its first line is the time of the write
            stamp, _, entries = (await redis_client.get(key)).partition("\n")
            assert float(stamp) > 0, key
            out[key] = expires, entries
        else:
            fields = await redis_client.hgetall(key)
            assert "_updated_at" in fields, key
            out[key] = expires, {f: v for f, v in fields.items() if f != "_updated_at"}
    return out


@pytest.mark.parametrize("kind", ["transactions", "sessions"])
async def test_a_batch_of_updates_stores_what_one_by_one_updates_store(settings: Settings,
                                                                       redis_client: aioredis.Redis,
                                                                       kind: str) -> None:
    """The scripts write each key once per batch (summed counters, one expiry, one stamp): the stored state is the
    one per-event calls leave, redeliveries included, over 40 days (so counters are swept mid-batch)."""
    store = RedisFeatureStore(redis_client)
    start = time.time() - 40 * DAY
    if kind == "transactions":
        updates: list = [tx_update(e) for e in transaction_events(600, start=start, span_sec=40 * DAY, cards=12,
                                                                   merchants=5)]
        apply = store.apply_transactions
    else:
        updates = [session_update(e) for e in session_events(600, start=start, span_sec=40 * DAY, users=8)]
        apply = store.apply_session_events  # type: ignore[assignment]
    with_redeliveries = updates[:300] + updates[250:]  # a batch overlapping the previous one
    for u in with_redeliveries:
        await apply([u])
    one_by_one = await _stored(redis_client)
    await redis_client.flushdb()
    added = [await apply(with_redeliveries[i:i + 97]) for i in range(0, len(with_redeliveries), 97)]
    assert sum(added) == len(updates)
    assert await _stored(redis_client) == one_by_one
    assert len(one_by_one) > 20
    assert any(expires for expires, _ in one_by_one.values())  # type: ignore[misc]
    assert any("_swept" in content for _, content in one_by_one.values())  # type: ignore[misc,operator]
