"""Load the online features computed from history into Redis.

The saved training history (``data/``, written by ``train``) is replayed in time order through the Redis feature
store's own update methods, so Redis ends up in exactly the state the worker would have built by consuming that
history. Only the tail that can still matter is replayed: the last ``LABEL_DELAY_DAYS + RISK_WINDOW_DAYS + 1``
days for fraud (merchant / MCC risk counters; card windows are shorter) and ``USER_WINDOW_SEC + 1`` day for
sessions. Labels are replayed only if they had arrived by the end of the history.

Idempotence: the store's updates are idempotent per event id only while the event is still in its entity's
window (a card's transactions are kept ~8 days, but merchant counters 36), so re-applying a 36-day tail would
count old transactions twice. Materialization therefore records a watermark per model in Redis
(``materialize:{fraud|personalization}``: which history, how many of its updates are applied, updated after every
batch): a second run skips what is already applied and writes nothing; an interrupted run resumes. Redis holding
another history's features is refused unless ``--reset`` (always start afresh) or ``--reset-if-changed`` (start
afresh only then: what ``make run`` wants after a retrain); replaying on top would double count.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stream_scorer.config import Settings
from stream_scorer.core.feature_state import (
    RISK_RETENTION_DAYS,
    USER_RETENTION_SEC,
    LabelUpdate,
    SessionUpdate,
    TransactionUpdate,
)
from training.history import load_fraud_history, load_session_history
from training.offline_features import epoch_seconds

FRAUD_TAIL = timedelta(days=RISK_RETENTION_DAYS)
SESSION_TAIL = timedelta(seconds=USER_RETENTION_SEC)
WATERMARK_PREFIX = "materialize:"
_KEY_PATTERNS = ("features:*", "labels:seen:*", WATERMARK_PREFIX + "*")


class MaterializeError(RuntimeError):
    pass


class UpdateSink(Protocol):
    """The part of the feature store materialization writes through (``RedisFeatureStore`` fits)."""

    async def apply_transactions(self, updates: Sequence[TransactionUpdate]) -> int: ...

    async def apply_labels(self, updates: Sequence[LabelUpdate]) -> int: ...

    async def apply_session_events(self, updates: Sequence[SessionUpdate]) -> int: ...


class Watermarks(Protocol):
    """Where materialization records how far it got, per model kind."""

    async def get(self, kind: str) -> tuple[str, int] | None:
        """(history id, updates applied) or None."""
        ...

    async def set(self, kind: str, history_id: str, applied: int) -> None: ...


class RedisWatermarks:
    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def get(self, kind: str) -> tuple[str, int] | None:
        data = await self._redis.hgetall(WATERMARK_PREFIX + kind)
        if not data or "history" not in data:
            return None
        return str(data["history"]), int(data.get("applied", 0))

    async def set(self, kind: str, history_id: str, applied: int) -> None:
        await self._redis.hset(WATERMARK_PREFIX + kind,
                               mapping={"history": history_id, "applied": applied, "updated_at": time.time()})


class MemoryWatermarks:
    def __init__(self) -> None:
        self.values: dict[str, tuple[str, int]] = {}

    async def get(self, kind: str) -> tuple[str, int] | None:
        return self.values.get(kind)

    async def set(self, kind: str, history_id: str, applied: int) -> None:
        self.values[kind] = (history_id, applied)


@dataclass(slots=True)
class MaterializeResult:
    events: dict[str, int] = field(default_factory=dict)
    """Events replayed per kind (transactions, labels, session events)."""
    applied: dict[str, int] = field(default_factory=dict)
    """Of those, newly applied (0 on a repeated run)."""
    entities: dict[str, int] = field(default_factory=dict)
    """Distinct entities (Redis hashes) the replayed events touch, per entity kind."""
    keys_before: int = 0
    keys_after: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)


async def materialize(settings: Settings, data_dir: Path, *, batch_size: int = 5_000, only: str | None = None,
                      reset: bool = False, reset_if_changed: bool = False,
                      console: Console | None = None) -> MaterializeResult:
    """Replay the saved history's tail into the Redis of ``settings``."""
    from stream_scorer.core.feature_store import RedisFeatureStore
    from stream_scorer.core.redis_client import create_redis

    redis = create_redis(settings.redis)
    try:
        await redis.ping()
        if reset or (reset_if_changed and await _history_changed(RedisWatermarks(redis), data_dir, only)):
            if console is not None:
                console.print("  [yellow]deleting the existing feature keys (features:*, labels:seen:*)[/]")
            await _delete_feature_keys(redis)
        result = MaterializeResult(keys_before=int(await redis.dbsize()))
        await replay_history(RedisFeatureStore(redis), RedisWatermarks(redis), data_dir, result,
                             batch_size=batch_size, only=only, console=console)
        result.keys_after = int(await redis.dbsize())
        return result
    finally:
        await redis.aclose()


async def replay_history(sink: UpdateSink, watermarks: Watermarks, data_dir: Path, result: MaterializeResult, *,
                         batch_size: int = 5_000, only: str | None = None,
                         console: Console | None = None) -> MaterializeResult:
    """Replay into any :class:`UpdateSink` (tests use in-memory ones)."""
    start = time.perf_counter()
    console = console or Console(stderr=True, quiet=True)
    if only in (None, "fraud"):
        fraud = load_fraud_history(data_dir)
        if fraud is None:
            result.skipped.append(f"fraud: no saved history under {data_dir / 'fraud'} (run `train fraud` first)")
        else:
            updates = fraud_updates(fraud.transactions, fraud.labels, fraud.end)
            result.events["transactions"] = sum(1 for kind, _ in updates if kind == "tx")
            result.events["labels"] = sum(1 for kind, _ in updates if kind == "label")
            tail = fraud.transactions.loc[fraud.transactions["timestamp"] >= fraud.end - FRAUD_TAIL]
            result.entities.update(card=tail["card_id"].nunique(), merchant=tail["merchant_id"].nunique(),
                                   mcc=tail["mcc_code"].nunique())
            await _apply(sink, watermarks, "fraud", _history_id(fraud.manifest), updates, batch_size, console,
                         result)
    if only in (None, "personalization"):
        sessions = load_session_history(data_dir)
        if sessions is None:
            result.skipped.append(f"personalization: no saved history under {data_dir / 'personalization'} "
                                  "(run `train personalization` first)")
        else:
            updates = session_updates(sessions.events, sessions.end)
            result.events["session_events"] = len(updates)
            tail = sessions.events.loc[sessions.events["timestamp"] >= sessions.end - SESSION_TAIL]
            result.entities.update(user=tail["user_id"].nunique(), item=tail["item_id"].nunique())
            await _apply(sink, watermarks, "personalization", _history_id(sessions.manifest), updates, batch_size,
                         console, result)
    result.seconds = time.perf_counter() - start
    return result


def fraud_updates(transactions: pd.DataFrame, labels: pd.DataFrame, end: Any) -> list[tuple[str, Any]]:
    """The tail's transactions and arrived labels as store updates, interleaved in time order (a label applies
    before a transaction only if it arrived strictly earlier, as in the offline replay)."""
    first = end - FRAUD_TAIL
    tx = transactions.loc[transactions["timestamp"] >= first].sort_values("timestamp", kind="stable")
    lab = labels.loc[(labels["timestamp"] >= first) & (labels["timestamp"] < end)]
    lab = lab.sort_values("timestamp", kind="stable")
    tx_ts = epoch_seconds(tx["timestamp"])
    countries = tx["country_code"].tolist() if "country_code" in tx.columns else [None] * len(tx)
    tx_updates = [("tx", TransactionUpdate(tid, card, ts, amount, _text_or_none(country), merchant, mcc))
                  for tid, card, ts, amount, country, merchant, mcc in zip(
                      tx["transaction_id"].tolist(), tx["card_id"].tolist(), tx_ts.tolist(),
                      tx["transaction_amount"].tolist(), countries, tx["merchant_id"].tolist(),
                      tx["mcc_code"].tolist(), strict=True)]
    label_updates = [("label", LabelUpdate(tid, merchant, mcc, ts, bool(fraud))) for tid, merchant, mcc, ts, fraud
                     in zip(lab["transaction_id"].tolist(), lab["merchant_id"].tolist(), lab["mcc_code"].tolist(),
                            epoch_seconds(lab["transaction_timestamp"]).tolist(), lab["is_fraud"].tolist(),
                            strict=True)]
    # Stable merge on (time, kind): at equal times the transaction goes first.
    times = np.concatenate([tx_ts, epoch_seconds(lab["timestamp"])])
    kinds = np.concatenate([np.zeros(len(tx_updates)), np.ones(len(label_updates))])
    order = np.lexsort((kinds, times))
    merged = tx_updates + label_updates
    return [merged[i] for i in order]


def session_updates(events: pd.DataFrame, end: Any) -> list[tuple[str, Any]]:
    tail = events.loc[events["timestamp"] >= end - SESSION_TAIL].sort_values("timestamp", kind="stable")
    return [("session", SessionUpdate(eid, user, ts, etype, item, category, price, _text_or_none(session)))
            for eid, user, ts, etype, item, category, price, session in zip(
                tail["event_id"].tolist(), tail["user_id"].tolist(), epoch_seconds(tail["timestamp"]).tolist(),
                tail["event_type"].tolist(), tail["item_id"].tolist(), tail["item_category"].tolist(),
                tail["item_price"].tolist(), tail["session_id"].tolist(), strict=True)]


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def batches(updates: Sequence[tuple[str, Any]], size: int) -> Iterator[tuple[str, list[Any]]]:
    """Consecutive runs of one kind, at most ``size`` long, in the original order."""
    current: list[Any] = []
    kind = ""
    for k, update in updates:
        if current and (k != kind or len(current) >= size):
            yield kind, current
            current = []
        kind = k
        current.append(update)
    if current:
        yield kind, current


async def _apply(sink: UpdateSink, watermarks: Watermarks, kind: str, history_id: str,
                 updates: list[tuple[str, Any]], batch_size: int, console: Console, result: MaterializeResult) -> None:
    done = 0
    mark = await watermarks.get(kind)
    if mark is not None:
        if mark[0] != history_id:
            raise MaterializeError(
                f"Redis already holds {kind} features materialized from another history ({mark[0]}); replaying "
                f"this one ({history_id}) on top would count events twice: rerun with --reset (or "
                "--reset-if-changed) to start afresh")
        done = min(mark[1], len(updates))
    methods: dict[str, tuple[str, Callable[[list[Any]], Awaitable[int]]]] = {
        "tx": ("transactions", sink.apply_transactions), "label": ("labels", sink.apply_labels),
        "session": ("session_events", sink.apply_session_events)}
    for name in {methods[k][0] for k, _ in updates}:
        result.applied.setdefault(name, 0)
    columns = (TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(f"{kind} history -> Redis", total=len(updates), completed=done)
        for k, batch in batches(updates[done:], batch_size):
            name, method = methods[k]
            result.applied[name] += int(await method(batch))
            done += len(batch)
            await watermarks.set(kind, history_id, done)
            bar.advance(task, len(batch))


async def _history_changed(watermarks: Watermarks, data_dir: Path, only: str | None) -> bool:
    histories = {"fraud": load_fraud_history(data_dir), "personalization": load_session_history(data_dir)}
    for kind, history in histories.items():
        if history is None or only not in (None, kind):
            continue
        mark = await watermarks.get(kind)
        if mark is not None and mark[0] != _history_id(history.manifest):
            return True
    return False


def _history_id(manifest: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{manifest.get('source', '?')}@{manifest.get('history_end', '?')}#{digest}"


async def _delete_feature_keys(redis: Any) -> None:
    for pattern in _KEY_PATTERNS:
        chunk: list[str] = []
        async for key in redis.scan_iter(match=pattern, count=1_000):
            chunk.append(key)
            if len(chunk) >= 1_000:
                await redis.unlink(*chunk)
                chunk = []
        if chunk:
            await redis.unlink(*chunk)


def summary_table(result: MaterializeResult) -> Table:
    table = Table(title="materialize", show_header=True)
    table.add_column("what")
    table.add_column("value", justify="right")
    for name, n in result.events.items():
        table.add_row(f"{name} replayed", f"{n:,}")
        table.add_row(f"{name} newly applied", f"{result.applied.get(name, 0):,}")
    for entity, n in result.entities.items():
        table.add_row(f"{entity} entities", f"{n:,}")
    table.add_row("Redis keys before / after", f"{result.keys_before:,} / {result.keys_after:,}")
    table.add_row("keys written", f"{result.keys_after - result.keys_before:,}")
    table.add_row("time", f"{result.seconds:.1f} s")
    for note in result.skipped:
        table.add_row("skipped", note)
    return table
