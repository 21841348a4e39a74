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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from stream_scorer.config import Settings
from stream_scorer.tasks import cancel_and_wait

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_worker(settings: Settings, **changes: object) -> Settings:
    """``settings`` with some worker fields changed (another data dir or metrics port for a second worker)."""
    return settings.model_copy(update={"worker": settings.worker.model_copy(update=changes)})


def log_tail(path: Path, chars: int = 3000) -> str:
    """The end of a worker's log, for assertion messages."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return f"--- last {min(chars, len(text))} chars of {path.name} ---\n{text[-chars:]}"


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes ``load_settings()`` in a child process equal ``settings``."""
    env = {
        "MODEL_DIR": str(settings.model_dir), "USE_ONNX": str(settings.use_onnx).lower(),
        "MODEL_RELOAD_INTERVAL": str(settings.model_reload_interval), "EXPLAIN_METHOD": settings.explain_method,
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
def cli_process(command: str, env: dict[str, str], ready_url: str, log_path: Path, *, stderr_path: Path | None = None,
                ready_timeout: float = 60.0, stop_timeout: float = 30.0) -> Iterator[subprocess.Popen[bytes]]:
    """``stream-scorer <command>`` in a child process (stdout to ``log_path``, stderr there too unless
    ``stderr_path``); waits until ``ready_url`` answers 200, stops it with SIGTERM (graceful) at the end."""
    with open(log_path, "wb") as out, open(stderr_path or os.devnull, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "stream_scorer", command], cwd=ROOT, env={**os.environ, **env},
                                stdout=out, stderr=err if stderr_path else subprocess.STDOUT)
    logs = stderr_path or log_path
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{command} exited with {proc.returncode}:\n{log_tail(logs)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command} not ready after {ready_timeout}s:\n{log_tail(logs)}")
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def worker_process(settings: Settings, log_path: Path, *,
                   ready_timeout: float = 60.0) -> Iterator[subprocess.Popen[bytes]]:
    """``stream-scorer worker`` in a child process; waits for its /ready, stops it with SIGTERM (graceful)."""
    port = settings.worker.metrics_port or free_port()
    env = {**settings_env(settings), "WORKER_METRICS_PORT": str(port)}
    with cli_process("worker", env, f"http://127.0.0.1:{port}/ready", log_path,
                     ready_timeout=ready_timeout) as proc:
        yield proc


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


async def produce_paced(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes]], *, rate: float,
                        progress: Callable[[int], None] | None = None) -> None:
    """Produce ``records`` at about ``rate`` per second (in 20 ms slices), waiting for every acknowledgement;
    ``progress`` is told how many were sent after each slice."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        futures = []
        sent = 0
        while sent < len(records):
            due = min(len(records), int((loop.time() - start) * rate) + 1)
            for key, value in records[sent:due]:
                futures.append(await producer.send(topic, value, key=key))
            sent = max(sent, due)
            if progress is not None:
                progress(sent)
            await asyncio.sleep(0.02)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class TopicReader:
    """Reads topics from the beginning in the background; a test waits until what arrived satisfies it.

    Start it once the worker is ready (the worker creates the output topics)::

        async with TopicReader(bootstrap, [decisions_topic]) as reader:
            await reader.wait_until(lambda records: len(records) >= 100, within=60)
    """

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self._consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None,
                                          auto_offset_reset="earliest")
        self.records: list[ConsumerRecord[bytes, bytes]] = []
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        self._task = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await cancel_and_wait(self._task)
        await self._consumer.stop()

    async def _read(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                self.records.extend(msgs)
            if batch:
                self._arrived.set()

    async def wait_until(self, done: Callable[[list[ConsumerRecord[bytes, bytes]]], bool], *,
                         within: float) -> bool:
        """True as soon as ``done(records)`` holds, False after ``within`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not done(self.records):
            if self._task is not None and self._task.done():
                self._task.result()  # the reader failed: raise its error
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout=min(left, 0.5))
        return True

    async def settle(self, seconds: float) -> None:
        """Keep reading for ``seconds`` more (to catch late duplicates)."""
        await asyncio.sleep(seconds)
