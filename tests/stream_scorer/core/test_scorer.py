from __future__ import annotations

import gc
import random
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from schemas.decisions import TIMING_FIELDS
from schemas.events import TransactionEvent
from stream_scorer.bootstrap import MODEL_FEATURES
from stream_scorer.core.batch_merge import card_parts
from stream_scorer.core.features import DAY, FRAUD_FEATURE_NAMES
from stream_scorer.core.identified import identify_session_event, identify_transaction
from stream_scorer.core.scorer import Scorer
from stream_scorer.core.store_calls import STREAM_PART_SIZE
from stream_scorer.errors import FeatureStoreUnavailable, ModelNotLoaded
from stream_scorer.metrics import Metrics
from stream_scorer.models.registry import ModelRegistry
from tests.support.events import session_events, transaction_events
from tests.support.fakes import InMemoryFeatureStore


def _scorer(model_dir: Path, *, part_size: int = STREAM_PART_SIZE) -> tuple[Scorer, InMemoryFeatureStore, Metrics]:
    registry = ModelRegistry(model_dir, expected_features=MODEL_FEATURES)
    for name in MODEL_FEATURES:
        registry.refresh(name)
    store = InMemoryFeatureStore()
    metrics = Metrics()
    return Scorer(store, registry, metrics, part_size=part_size), store, metrics


def _without_timing(decision: object) -> dict[str, object]:
    return {k: v for k, v in decision.model_dump().items() if k not in TIMING_FIELDS}  # type: ignore[attr-defined]


def _identified(events):  # type: ignore[no-untyped-def]
    return [identify_transaction(e, "unused", 0.0) for e in events]


@pytest.mark.parametrize(("part_size", "cards", "span_days"), [
    (STREAM_PART_SIZE, 5, 1),  # one part per batch of 64
    (7, 5, 1),  # parts of 7 sharing cards, read at the start and merged in memory (a batch over midnight: part
    (7, 60, 1),  # after part); most parts share no card
    (7, 60, 60),  # batches spanning ~13 days: counters and window trims reach across parts, read part after part
])
async def test_batch_path_equals_one_event_at_a_time(model_dir: Path, part_size: int, cards: int,
                                                     span_days: int) -> None:
    events = transaction_events(300, start=time.time() - (span_days + 1) * DAY, span_sec=span_days * DAY,
                                cards=cards)
    batch_scorer, _, _ = _scorer(model_dir, part_size=part_size)
    single_scorer, _, _ = _scorer(model_dir)
    batched = []
    for i in range(0, len(events), 64):
        batched += await batch_scorer.score_transactions(_identified(events[i:i + 64]), apply_updates=True)
    one_by_one = [(await single_scorer.score_transactions(_identified([e]), apply_updates=True))[0] for e in events]
    assert [_without_timing(d) for d in batched] == [_without_timing(d) for d in one_by_one]
    # the features really moved: later events of a card see the earlier ones
    assert any("card_tx_count_24h" not in d.features_missing for d in batched[50:])


async def test_a_redelivered_event_gets_the_same_decision(model_dir: Path) -> None:
    scorer, _, _ = _scorer(model_dir)
    events = _identified(transaction_events(40, start=time.time() - DAY, span_sec=3600, cards=2))
    first = await scorer.score_transactions(events, apply_updates=True)
    again = await scorer.score_transactions(events, apply_updates=True)
    assert [_without_timing(d) for d in first] == [_without_timing(d) for d in again]
    assert len({d.decision_id for d in first}) == 40


async def test_decision_fields_follow_the_thresholds(model_dir: Path) -> None:
    scorer, _, metrics = _scorer(model_dir)
    events = _identified(transaction_events(200, start=time.time() - DAY, span_sec=3600, cards=3))
    decisions = await scorer.score_transactions(events, apply_updates=True)
    for d in decisions:
        expected = "decline" if d.fraud_score >= 0.85 else "review" if d.fraud_score >= 0.5 else "approve"
        assert d.recommended_action == expected
        assert d.risk_level == {"approve": "low", "review": "medium", "decline": "high"}[expected]
        assert d.confidence == pytest.approx(max(d.fraud_score, 1 - d.fraud_score), abs=1e-6)
        assert set(d.top_risk_factors) <= set(FRAUD_FEATURE_NAMES)
        assert d.features_used == len(FRAUD_FEATURE_NAMES)
    assert len({d.fraud_score for d in decisions}) > 5
    scored = metrics.registry.get_sample_value("prediction_scores_count", {"model": "fraud", "version": "v1"})
    assert scored == 200


async def test_redis_down_gives_a_degraded_decision_or_an_error(model_dir: Path) -> None:
    scorer, store, metrics = _scorer(model_dir)
    store.fail = RedisConnectionError("connection refused")
    [event] = _identified(transaction_events(1, start=time.time(), span_sec=1))
    [decision] = await scorer.score_transactions([event], allow_degraded=True)
    assert decision.degraded is True
    assert "card_tx_count_1h" in decision.features_missing
    # the degraded counter tells that story; features_missing_total counts features the store lacked
    assert metrics.registry.get_sample_value("features_missing_total",
                                             {"model": "fraud", "feature": "card_tx_count_1h"}) is None
    with pytest.raises(FeatureStoreUnavailable) as info:
        await scorer.score_transactions([event], allow_degraded=False)
    assert info.value.retryable
    store.fail = None
    [recovered] = await scorer.score_transactions([event], allow_degraded=True)
    assert recovered.degraded is False
    assert metrics.registry.get_sample_value("degraded_decisions_total", {"model": "fraud"}) == 1


async def test_personalization_decision_is_computed_from_features(model_dir: Path) -> None:
    scorer, _, _ = _scorer(model_dir)
    events = [identify_session_event(e, "unused", 0.0)
              for e in session_events(300, start=time.time() - 3 * DAY, span_sec=2 * DAY, users=4)]
    decisions = await scorer.score_session_events(events, apply_updates=True)
    assert len({d.conversion_probability for d in decisions}) > 5
    assert len({d.engagement_score for d in decisions}) > 5
    assert {d.user_segment for d in decisions} - {"new_visitor"}
    assert any(d.behavioral_signals for d in decisions)


async def test_missing_model_is_a_retryable_error(tmp_path: Path) -> None:
    scorer = Scorer(InMemoryFeatureStore(), ModelRegistry(tmp_path, expected_features=MODEL_FEATURES), Metrics())
    with pytest.raises(ModelNotLoaded):
        await scorer.score_transactions(_identified(transaction_events(1, start=time.time(), span_sec=1)))


@pytest.mark.parametrize(("users", "span_sec"), [
    (4, 3600),  # parts sharing users
    (300, 3600),  # most parts share no user: read at the start
    (300, 3 * DAY),  # item counters of one day reach the next day's events: read part after part
])
async def test_sessions_in_parts_equal_one_event_at_a_time(model_dir: Path, users: int, span_sec: float) -> None:
    events = [identify_session_event(e, "unused", 0.0)
              for e in session_events(120, start=time.time() - 4 * DAY, span_sec=span_sec, users=users)]
    batch_scorer, _, _ = _scorer(model_dir, part_size=9)
    single_scorer, _, _ = _scorer(model_dir)
    batched = await batch_scorer.score_session_events(events, apply_updates=True)
    one_by_one = [(await single_scorer.score_session_events([e], apply_updates=True))[0] for e in events]
    assert [_without_timing(d) for d in batched] == [_without_timing(d) for d in one_by_one]


def _one_day_start() -> float:
    """1 AM UTC two days ago: events over the next hours stay inside one day (their reads all at the start)."""
    return (time.time() // DAY - 2) * DAY + 3600


async def test_the_stream_repeats_no_call_written_before_another(model_dir: Path) -> None:
    """A repeat on a new connection could run after the next part's read, which must see this part's updates:
    the stream fails the batch instead (the worker retries it whole). The first read and the last part's
    updates have nothing written around them and may repeat, as a lone HTTP read."""
    scorer, store, _ = _scorer(model_dir, part_size=5)
    events = _identified(transaction_events(12, start=time.time() - 4 * DAY, span_sec=3 * DAY, cards=1))
    parts, sequential = card_parts(events, 5)
    assert sequential and len(parts) >= 3  # over days: each part read after the previous part's updates
    await scorer.score_transactions(events, apply_updates=True)
    assert store.retry_flags == [("fetch", True), *[("update", False), ("fetch", False)] * (len(parts) - 1),
                                 ("update", True)]
    store.retry_flags.clear()
    await scorer.score_transactions(events)
    assert store.retry_flags == [("fetch", True)]


async def test_reads_of_a_batch_within_a_day_are_written_at_the_start(model_dir: Path) -> None:
    """Redis reads them while the worker decides, even for a card in several parts (its earlier events are
    merged in memory); only the first may be repeated on a new connection."""
    scorer, store, _ = _scorer(model_dir, part_size=2)
    events = _identified(transaction_events(6, start=_one_day_start(), span_sec=3600, cards=1, seed=3))
    await scorer.score_transactions(events, apply_updates=True)
    # parts of 1, 2, 2 and 1 events
    assert store.retry_flags == [("fetch", True), ("fetch", False), ("fetch", False), ("fetch", False),
                                 ("update", False), ("update", False), ("update", False), ("update", True)]


@pytest.mark.parametrize(("span_sec", "fetches"), [
    (3600, 6),  # within a day: the six parts' reads written at the start, the five unused ones discarded
    (3 * DAY, 2),  # over days: the third part's read is never written
])
async def test_a_failed_part_fails_the_batch_and_leaves_no_read_behind(model_dir: Path, span_sec: float,
                                                                        fetches: int) -> None:
    scorer, store, _ = _scorer(model_dir, part_size=5)
    start = _one_day_start() if span_sec < DAY else time.time() - 4 * DAY
    events = _identified(transaction_events(20, start=start, span_sec=span_sec, cards=3))
    send = store.send_transactions
    calls = 0

    async def failing_second_part(updates, *, retry=True):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RedisConnectionError("connection lost")
        return await send(updates, retry=retry)

    store.send_transactions = failing_second_part  # type: ignore[method-assign]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(FeatureStoreUnavailable):
            await scorer.score_transactions(events, apply_updates=True)
        gc.collect()
    assert calls == 2 and store.fetches == fetches
    assert not [w for w in caught if "never awaited" in str(w.message)]


async def test_a_part_that_fails_to_score_discards_the_next_read(model_dir: Path) -> None:
    scorer, store, _ = _scorer(model_dir, part_size=5)
    events = _identified(transaction_events(20, start=_one_day_start(), span_sec=3600, cards=3))

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ValueError("scoring bug")

    scorer._fraud_decisions = broken  # type: ignore[method-assign]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="scoring bug"):
            await scorer.score_transactions(events, apply_updates=True)
        gc.collect()
    assert store.fetches == 6  # every part's read was written before the first part was scored
    assert not [w for w in caught if "never awaited" in str(w.message)]


@pytest.mark.parametrize("seed", [1, 2])
async def test_a_batch_out_of_time_order_over_days_equals_one_event_at_a_time(model_dir: Path, seed: int) -> None:
    """A catch-up batch mixes partitions at different times. Over days, one event's counter update reaches
    another's merchant features (a sweep of old days: 2 days earlier; an increment: 8 days later), so such a
    batch is cut where its events are that far apart and read part after part."""
    events = transaction_events(400, start=time.time() - 60 * DAY, span_sec=55 * DAY, cards=200, merchants=3,
                                seed=seed)
    rng = random.Random(seed)
    batches = [events[i:i + 40] for i in range(0, len(events), 40)]  # ~5.5 days each, shuffled
    for batch in batches:
        rng.shuffle(batch)
    batch_scorer, _, _ = _scorer(model_dir, part_size=8)
    single_scorer, _, _ = _scorer(model_dir)
    batched = [d for batch in batches for d in await batch_scorer.score_transactions(_identified(batch),
                                                                                       apply_updates=True)]
    one_by_one = [(await single_scorer.score_transactions(_identified([e]), apply_updates=True))[0]
                  for batch in batches for e in batch]
    assert [_without_timing(d) for d in batched] == [_without_timing(d) for d in one_by_one]


async def test_a_later_event_trimming_a_window_that_an_earlier_one_reads_is_applied_first(model_dir: Path) -> None:
    """Out of time order in one batch: a transaction 36 hours later comes first. Its update trims its card's
    window of members older than the retention (7 days and one), one of which the earlier transaction still
    reads (7 days less one hour before it): one event at a time, it no longer sees it; so must the batch."""
    day = time.time() // DAY - 3
    t_old, t_early, t_late = (day - 7) * DAY + 2 * 3600, day * DAY + 3600, (day + 1) * DAY + 13 * 3600

    def tx(ts: float, name: str) -> TransactionEvent:
        return TransactionEvent(card_id="card_t", transaction_amount=20.0, transaction_id=name,
                                timestamp=datetime.fromtimestamp(ts, UTC))

    batch_scorer, _, _ = _scorer(model_dir)
    single_scorer, _, _ = _scorer(model_dir)
    for scorer in (batch_scorer, single_scorer):
        await scorer.score_transactions(_identified([tx(t_old, "old")]), apply_updates=True)
    late, early = tx(t_late, "late"), tx(t_early, "early")
    batched = await batch_scorer.score_transactions(_identified([late, early]), apply_updates=True)
    one_by_one = [(await single_scorer.score_transactions(_identified([e]), apply_updates=True))[0]
                  for e in (late, early)]
    assert [_without_timing(d) for d in batched] == [_without_timing(d) for d in one_by_one]
    assert "card_tx_count_7d" in batched[1].features_missing  # "old" was trimmed before "early" read


async def test_a_duplicate_in_one_batch_counts_once(model_dir: Path) -> None:
    events = transaction_events(3, start=time.time() - 600, span_sec=300, cards=1)
    batch_scorer, _, _ = _scorer(model_dir)
    single_scorer, _, _ = _scorer(model_dir)
    duplicated = [events[0], events[0], events[1], events[2]]
    batched = await batch_scorer.score_transactions(_identified(duplicated), apply_updates=True)
    one_by_one = [(await single_scorer.score_transactions(_identified([e]), apply_updates=True))[0] for e in events]
    assert [_without_timing(d) for d in batched[1:]] == [_without_timing(d) for d in one_by_one]
