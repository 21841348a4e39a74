"""Running the worker as a real process against the real broker, and small Kafka helpers for tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from stream_scorer.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes ``load_settings()`` in a child process equal ``settings``."""
    env = {
        "MODEL_DIR": str(settings.model_dir), "USE_ONNX": str(settings.use_onnx).lower(),
        "FEATURE_CACHE_TTL": str(settings.feature_cache_ttl), "LOG_LEVEL": settings.log_level,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
    }
    for prefix, group in (("REDIS_", settings.redis), ("TOPIC_", settings.topics), ("WORKER_", settings.worker),
                          ("API_", settings.api)):
        for name, value in group.model_dump().items():
            if value is None:
                continue
            if hasattr(value, "get_secret_value"):
                value = value.get_secret_value()
            env[prefix + name.upper()] = str(value)
    return env


@contextlib.contextmanager
def worker_process(settings: Settings, log_path: Path, *,
                   ready_timeout: float = 60.0) -> Iterator[subprocess.Popen[bytes]]:
    """``stream-scorer worker`` in a child process; waits for its /ready, stops it with SIGTERM (graceful)."""
    port = settings.worker.metrics_port or free_port()
    env = {**os.environ, **settings_env(settings), "WORKER_METRICS_PORT": str(port)}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "stream_scorer", "worker"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready after {ready_timeout}s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def consume(bootstrap: str, topics: list[str], *, until: int, within: float,
                  settle: float = 2.0) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``topics`` from the beginning until ``until`` records arrived (then ``settle`` more seconds, to
    catch extras) or ``within`` seconds passed."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        settled_at: float | None = None
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                records.extend(msgs)
            if len(records) >= until:
                settled_at = settled_at or loop.time() + settle
                if loop.time() >= settled_at:
                    break
    finally:
        await consumer.stop()
    return records
