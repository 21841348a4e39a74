from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from stream_scorer.config import RedisSettings, Settings
from stream_scorer.core.feature_state import InMemoryFeatureState, LabelUpdate, SessionUpdate, TransactionUpdate
from stream_scorer.core.features import PersonalizationState, fraud_features, personalization_features
from training.history import save_fraud_history, save_session_history
from training.materialize import (
    FRAUD_TAIL,
    MaterializeError,
    MaterializeResult,
    MemoryWatermarks,
    batches,
    materialize,
    replay_history,
)
from training.offline_features import fraud_feature_frame, personalization_feature_frame
from training.simulate.sessions import SimulatedSessions
from training.simulate.transactions import SimulatedTransactions

TRAINING_REDIS_DB = 11


class MemorySink:
    """The store's update interface over the in-memory rules, recording each call."""

    def __init__(self) -> None:
        self.state = InMemoryFeatureState()
        self.calls: list[tuple[str, int]] = []
        self.times: list[float] = []

    async def apply_transactions(self, updates: Sequence[TransactionUpdate]) -> int:
        self.calls.append(("tx", len(updates)))
        self.times.extend(u.ts for u in updates)
        return sum(self.state.apply_transaction(u) for u in updates)

    async def apply_labels(self, updates: Sequence[LabelUpdate]) -> int:
        self.calls.append(("label", len(updates)))
        return sum(self.state.apply_label(u) for u in updates)

    async def apply_session_events(self, updates: Sequence[SessionUpdate]) -> int:
        self.calls.append(("session", len(updates)))
        return sum(self.state.apply_session_event(u) for u in updates)


@pytest.fixture
def data_dir(tmp_path: Path, small_transactions: SimulatedTransactions, small_sessions: SimulatedSessions) -> Path:
    save_fraud_history(tmp_path, small_transactions.transactions, small_transactions.labels, "simulated",
                       small_transactions.end, {"seed": 3})
    save_session_history(tmp_path, small_sessions.events, "simulated", small_sessions.end, {"seed": 3})
    return tmp_path


def _full_replay_state(sim: SimulatedTransactions, sessions: SimulatedSessions) -> InMemoryFeatureState:
    """The state after the whole history, with every label that arrived by its end."""
    state = InMemoryFeatureState()
    arrived = sim.labels.loc[sim.labels["timestamp"] < sim.end]
    fraud_feature_frame(sim.transactions, arrived, state=state)
    for row in arrived.itertuples(index=False):  # labels arriving after the last transaction
        state.apply_label(LabelUpdate(row.transaction_id, row.merchant_id, row.mcc_code,
                                      row.transaction_timestamp.timestamp(), True))
    personalization_feature_frame(sessions.events, state=state)
    return state


async def test_replay_is_ordered_batched_idempotent_and_matches_the_full_history(
        data_dir: Path, small_transactions: SimulatedTransactions, small_sessions: SimulatedSessions) -> None:
    sink, marks = MemorySink(), MemoryWatermarks()
    first = await replay_history(sink, marks, data_dir, MaterializeResult(), batch_size=500)
    tx = small_transactions.transactions
    tail = tx.loc[tx["timestamp"] >= small_transactions.end - FRAUD_TAIL]
    assert first.events["transactions"] == first.applied["transactions"] == len(tail)
    assert first.applied["labels"] == first.events["labels"] > 0
    assert first.applied["session_events"] == first.events["session_events"] > 0
    assert max(n for _, n in sink.calls) <= 500
    assert sink.times == sorted(sink.times)
    assert {kind for kind, _ in sink.calls} == {"tx", "label", "session"}

    # Same features at the end of the history as a replay of the whole history.
    reference = _full_replay_state(small_transactions, small_sessions)
    ts = small_transactions.end.timestamp() + 60
    sample = tx.drop_duplicates("card_id").sample(60, random_state=0)
    for row in sample.itertuples(index=False):
        ours = sink.state.fraud_state(row.card_id, row.merchant_id, row.mcc_code)
        theirs = reference.fraud_state(row.card_id, row.merchant_id, row.mcc_code)
        assert fraud_features(ts, 80.0, "GB", ours) == fraud_features(ts, 80.0, "GB", theirs)
    for row in small_sessions.events.drop_duplicates("user_id").head(40).itertuples(index=False):
        ours_p = sink.state.personalization_state(row.user_id, row.item_id)
        theirs_p = reference.personalization_state(row.user_id, row.item_id)
        args = (ts, row.item_id, row.item_category, row.item_price, "new-session")
        assert personalization_features(*args, ours_p) == personalization_features(*args, theirs_p)

    # A second run applies nothing and does not even call the store.
    calls = len(sink.calls)
    second = await replay_history(sink, marks, data_dir, MaterializeResult(), batch_size=500)
    assert sum(second.applied.values()) == 0
    assert len(sink.calls) == calls


async def test_an_interrupted_run_resumes_and_another_history_is_refused(data_dir: Path) -> None:
    marks = MemoryWatermarks()
    await marks.set("fraud", "stale", 0)
    with pytest.raises(MaterializeError, match="another history"):
        await replay_history(MemorySink(), marks, data_dir, MaterializeResult(), only="fraud")
    marks = MemoryWatermarks()
    sink = MemorySink()
    full = await replay_history(sink, marks, data_dir, MaterializeResult(), only="fraud")
    history_id, applied = marks.values["fraud"]
    await marks.set("fraud", history_id, applied - 1_000)  # as if the last batches never ran
    resumed = await replay_history(MemorySink(), marks, data_dir, MaterializeResult(), only="fraud")
    assert sum(resumed.applied.values()) == 1_000 < sum(full.applied.values())


async def test_a_missing_history_is_reported_not_fatal(tmp_path: Path) -> None:
    result = await replay_history(MemorySink(), MemoryWatermarks(), tmp_path, MaterializeResult())
    assert len(result.skipped) == 2 and "run `train fraud` first" in result.skipped[0]


def test_batches_keep_order_and_split_on_kind_and_size() -> None:
    updates = [("tx", 1), ("tx", 2), ("tx", 3), ("label", 4), ("tx", 5)]
    assert list(batches(updates, 2)) == [("tx", [1, 2]), ("tx", [3]), ("label", [4]), ("tx", [5])]


# ------------------------------------------------------------------------------------- the real Redis store
@pytest.fixture
async def redis_settings(request: pytest.FixtureRequest) -> AsyncIterator[Settings]:
    from stack import stack

    host, port = os.environ.get("REDIS_HOST", "127.0.0.1"), int(os.environ.get("REDIS_PORT", "6379"))
    try:
        answers = stack.redis_ping(host, port)
    except Exception:
        answers = False
    if not answers:
        services = request.getfixturevalue("services")
        host, port = services.redis_host, services.redis_port
    settings = Settings(redis=RedisSettings(host=host, port=port, db=TRAINING_REDIS_DB))
    import redis.asyncio as aioredis

    client = aioredis.Redis(host=host, port=port, db=TRAINING_REDIS_DB)
    await client.flushdb()
    try:
        yield settings
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.mark.integration
async def test_materialize_into_real_redis_matches_offline_state(
        redis_settings: Settings, data_dir: Path, small_transactions: SimulatedTransactions,
        small_sessions: SimulatedSessions) -> None:
    from stream_scorer.core.feature_store import RedisFeatureStore
    from stream_scorer.core.redis_client import create_redis

    first = await materialize(redis_settings, data_dir, batch_size=2_000)
    assert first.keys_after > first.keys_before == 0
    assert first.applied["transactions"] == first.events["transactions"]
    second = await materialize(redis_settings, data_dir, batch_size=2_000)
    assert sum(second.applied.values()) == 0 and second.keys_after == first.keys_after

    reference = _full_replay_state(small_transactions, small_sessions)
    end: datetime = small_transactions.end
    ts = (end + timedelta(minutes=5)).timestamp()
    sample = small_transactions.transactions.drop_duplicates("card_id").sample(50, random_state=1)
    keys = [(r.card_id, r.merchant_id, r.mcc_code, ts) for r in sample.itertuples(index=False)]
    redis = create_redis(redis_settings.redis)
    try:
        store = RedisFeatureStore(redis)
        fetched = await store.fetch_fraud_states(keys)
        users = small_sessions.events.drop_duplicates("user_id").head(30)
        p_keys = [(r.user_id, r.item_id, ts) for r in users.itertuples(index=False)]
        p_fetched: list[PersonalizationState] = await store.fetch_personalization_states(p_keys)
    finally:
        await redis.aclose()
    for (card, merchant, mcc, _), state in zip(keys, fetched, strict=True):
        expected = fraud_features(ts, 120.0, "FR", reference.fraud_state(card, merchant, mcc))
        assert fraud_features(ts, 120.0, "FR", state) == expected, card
    for row, p_state in zip(users.itertuples(index=False), p_fetched, strict=True):
        args = (ts, row.item_id, row.item_category, row.item_price, "s-new")
        expected_p = personalization_features(*args, reference.personalization_state(row.user_id, row.item_id))
        assert personalization_features(*args, p_state) == expected_p, row.user_id
    assert pd.Timestamp(end) > small_transactions.transactions["timestamp"].max()

    # Another history (here: the same events under another manifest) is refused, or replaces the old one.
    manifest = data_dir / "personalization" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"seed": 3', '"seed": 4'))
    with pytest.raises(MaterializeError, match="another history"):
        await materialize(redis_settings, data_dir, only="personalization")
    replaced = await materialize(redis_settings, data_dir, only="personalization", reset_if_changed=True)
    assert replaced.applied["session_events"] == replaced.events["session_events"] > 0
