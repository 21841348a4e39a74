"""``stream-scorer tail TOPIC``: print a topic's records as JSON lines (dead letters with their headers)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson
from aiokafka import AIOKafkaConsumer

from stream_scorer.config import Settings


async def tail(settings: Settings, topic: str, *, from_beginning: bool, count: int) -> int:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka.bootstrap_servers, group_id=None,
                                auto_offset_reset="earliest" if from_beginning else "latest")
    await consumer.start()
    seen = 0
    try:
        async for record in consumer:
            line: dict[str, object] = {"partition": record.partition, "offset": record.offset,
                                       "key": record.key.decode(errors="replace") if record.key else None}
            try:
                line["value"] = orjson.loads(record.value) if record.value else None
            except orjson.JSONDecodeError:
                line["value_raw"] = (record.value or b"").decode(errors="replace")
            if record.headers:
                line["headers"] = {k: v.decode(errors="replace") for k, v in record.headers}
            sys.stdout.write(orjson.dumps(line).decode() + "\n")
            sys.stdout.flush()
            seen += 1
            if count and seen >= count:
                break
    finally:
        await consumer.stop()
    return seen


def run_tail(settings: Settings, args: argparse.Namespace) -> int:
    try:
        asyncio.run(tail(settings, args.topic, from_beginning=args.from_beginning, count=args.count))
    except KeyboardInterrupt:
        pass
    return 0
