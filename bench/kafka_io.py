"""Kafka helpers of bench/stream.py: the benchmark's topics, producing a list of payloads, reading decisions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

DECISION_PARTITIONS = 6


class DecisionReader:
    """Reads the decisions topic from the beginning; keeps, per transaction id, the first decision's broker
    timestamp (ms), ``scored_at - event_timestamp`` (s) and how many decisions arrived."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                          auto_offset_reset="earliest", fetch_max_wait_ms=20)
        self.first: dict[str, tuple[int, float]] = {}
        self.records = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.ensure_future(self._read())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._consumer.stop()

    async def _read(self) -> None:
        while True:
            for msgs in (await self._consumer.getmany(timeout_ms=100, max_records=5000)).values():
                for m in msgs:
                    self.records += 1
                    d = orjson.loads(m.value)
                    if d["transaction_id"] not in self.first:
                        scored = datetime.fromisoformat(d["scored_at"]).timestamp()
                        event = datetime.fromisoformat(d["event_timestamp"]).timestamp()
                        self.first[d["transaction_id"]] = (m.timestamp, scored - event)

    async def wait_for(self, ids: set[str], within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if len(ids.intersection(self.first)) == len(ids):
                return True
            await asyncio.sleep(0.05)
        return False


async def create_topics(bootstrap: str, names: dict[str, str], partitions: int, *, delete: bool = False) -> None:
    """The benchmark's own topics (the decisions stamped by the broker: ``LogAppendTime``), or delete them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if delete:
            await admin.delete_topics(list(names.values()))
            return
        inputs = {names["TOPIC_TRANSACTIONS"], names["TOPIC_SESSIONS"], names["TOPIC_FRAUD_LABELS"]}
        await admin.create_topics([
            NewTopic(name, num_partitions=partitions if name in inputs else DECISION_PARTITIONS, replication_factor=1,
                     topic_configs={"message.timestamp.type": "LogAppendTime"}
                     if name == names["TOPIC_FRAUD_DECISIONS"] else {})
            for name in names.values()])
    finally:
        await admin.close()


async def produce_all(bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]],
                      on_start: Callable[[], object] = lambda: None) -> tuple[list[Any], float]:
    """Every payload as fast as aiokafka can; the broker's metadata of each and the seconds it took."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        on_start()
        started = time.time()
        futures = [await producer.send(topic, value, key=key) for key, value in payloads]
        metas = await asyncio.gather(*futures)
        return metas, time.time() - started
    finally:
        await producer.stop()
