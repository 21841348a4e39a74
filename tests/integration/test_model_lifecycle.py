"""Model lifecycle acceptance on real processes: an API process and a worker under continuous HTTP and stream
traffic, routing edited with the CLI while they run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from schemas.events import TransactionEvent
from stream_scorer.config import Settings
from stream_scorer.models.registry import traffic_bucket
from tests.support.artifacts import write_xgboost_artifact
from tests.support.events import event_body
from tests.support.processes import ROOT, TopicReader, cli_process, free_port, settings_env, worker_process

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@dataclass
class System:
    settings: Settings
    api_url: str
    env: dict[str, str]


@pytest.fixture
def system(settings: Settings, tmp_path: Path) -> Iterator[System]:
    model_dir = tmp_path / "models"
    write_xgboost_artifact(model_dir, "fraud", "v1", seed=1)
    write_xgboost_artifact(model_dir, "fraud", "v2", seed=2)
    write_xgboost_artifact(model_dir, "personalization", "v1")
    settings = settings.model_copy(update={"model_dir": model_dir})
    port = free_port()
    env = {**settings_env(settings), "API_HOST": "127.0.0.1", "API_PORT": str(port)}
    with worker_process(settings, tmp_path / "worker.log"), \
            cli_process("api", env, f"http://127.0.0.1:{port}/ready", tmp_path / "api.log"):
        yield System(settings, f"http://127.0.0.1:{port}", env)


def models_cli(system: System, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "stream_scorer", "models", *args], cwd=ROOT, capture_output=True,
                          env={**os.environ, **system.env}, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def _tx(card: str) -> TransactionEvent:
    return TransactionEvent(card_id=card, transaction_amount=42.0, transaction_id=uuid.uuid4().hex,
                            timestamp=datetime.now(UTC))


@dataclass
class Traffic:
    """Continuous HTTP requests and stream events until stopped; what was sent and answered."""

    http: list[tuple[float, int, str]] = field(default_factory=list)  # (sent at, status, model_version)
    produced: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def http_loop(self, base_url: str, worker: int) -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            i = 0
            while not self.stop.is_set():
                sent = time.time()
                r = await client.post("/score/fraud", content=event_body(_tx(f"card_http_{worker}_{i % 50}")))
                self.http.append((sent, r.status_code, r.json().get("model_version", "") if r.is_success else ""))
                i += 1

    async def stream_loop(self, bootstrap: str, topic: str, rate: float) -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            acks = []
            while not self.stop.is_set():
                event = _tx(f"card_stream_{len(self.produced) % 200}")
                acks.append(await producer.send(topic, event_body(event), key=event.card_id.encode()))
                self.produced.append(str(event.transaction_id))
                await asyncio.sleep(1 / rate)
            await asyncio.gather(*acks)
        finally:
            await producer.stop()


def _version_at(rows: list[tuple[float, str]], start: float, end: float) -> set[str]:
    return {version for at, version in rows if start <= at < end}


async def test_promote_and_rollback_under_load_fail_nothing_and_switch_within_a_second(system: System) -> None:
    s = system.settings
    traffic = Traffic()
    bootstrap = s.kafka.bootstrap_servers
    async with TopicReader(bootstrap, [s.topics.fraud_decisions, s.topics.dlq]) as reader:
        tasks = [asyncio.create_task(traffic.http_loop(system.api_url, w)) for w in range(4)]
        tasks.append(asyncio.create_task(traffic.stream_loop(bootstrap, s.topics.transactions, rate=200)))
        await asyncio.sleep(3)
        promote_started = time.time()  # the routing file changes between a CLI's start and its exit
        await asyncio.to_thread(models_cli, system, "promote", "fraud", "v1")
        promoted_at = time.time()
        await asyncio.sleep(4)
        rollback_started = time.time()
        await asyncio.to_thread(models_cli, system, "rollback", "fraud")
        rolled_back_at = time.time()
        await asyncio.sleep(4)
        traffic.stop.set()
        await asyncio.gather(*tasks)
        every = set(traffic.produced)
        decided = await reader.wait_until(
            lambda rs: every <= {orjson.loads(r.value)["transaction_id"] for r in rs
                                 if r.topic == s.topics.fraud_decisions}, within=60)
        assert decided, "some stream events got no decision"
        await reader.settle(1.0)
        dead = [r for r in reader.records if r.topic == s.topics.dlq]
        decisions = [orjson.loads(r.value) for r in reader.records if r.topic == s.topics.fraud_decisions]

    failed = [(at, status) for at, status, _ in traffic.http if status != 200]
    assert not failed, f"{len(failed)} failed requests of {len(traffic.http)}: {failed[:5]}"
    assert not dead, f"{len(dead)} dead letters: {[dict(r.headers) for r in dead[:3]]}"
    assert len(traffic.http) > 200 and len(traffic.produced) > 1000
    http = [(at, version) for at, _, version in traffic.http]
    stream = [(datetime.fromisoformat(d["scored_at"]).timestamp(), d["model_version"]) for d in decisions]
    for path, rows in (("http", http), ("stream", stream)):
        assert _version_at(rows, 0, promote_started) == {"v2"}, path
        assert _version_at(rows, promoted_at + 1.0, rollback_started) == {"v1"}, path
        assert _version_at(rows, rolled_back_at + 1.0, float("inf")) == {"v2"}, path


async def test_a_ten_percent_challenger_gets_the_same_cards_on_both_paths_and_shadows_are_compared(
        system: System) -> None:
    s = system.settings
    bootstrap = s.kafka.bootstrap_servers
    models_cli(system, "set-traffic", "fraud", "v1", "0.1")
    models_cli(system, "shadow", "fraud", "v1")
    await asyncio.sleep(1.5)  # both processes poll every 0.5 s
    cards = [f"card_ab_{i:05d}" for i in range(1000)]
    events = [_tx(c) for c in cards]
    from tests.support.processes import produce

    async with TopicReader(bootstrap, [s.topics.fraud_decisions, s.topics.shadow]) as reader:
        await produce(bootstrap, s.topics.transactions, [(e.card_id.encode(), event_body(e)) for e in events])
        async with httpx.AsyncClient(base_url=system.api_url, timeout=10) as client:
            http = {}
            for e in events:
                r = await client.post("/score/fraud", content=event_body(e))
                assert r.status_code == 200, r.text
                http[e.card_id] = r.json()["model_version"]
        ids = {e.transaction_id for e in events}
        done = await reader.wait_until(lambda rs: sum(1 for r in rs if r.topic == s.topics.shadow) >= 1000
                                       and ids <= {orjson.loads(r.value)["transaction_id"] for r in rs
                                                   if r.topic == s.topics.fraud_decisions}, within=60)
        assert done
        stream = {orjson.loads(r.value)["transaction_id"]: orjson.loads(r.value)["model_version"]
                  for r in reader.records if r.topic == s.topics.fraud_decisions}
        shadows = [orjson.loads(r.value) for r in reader.records if r.topic == s.topics.shadow]
    stream_by_card = {e.card_id: stream[str(e.transaction_id)] for e in events}
    assert stream_by_card == http  # the same card hits the same model on both paths
    expected = {c: "v1" if traffic_bucket("fraud", c) < 0.1 else "v2" for c in cards}
    assert http == expected
    share = sum(v == "v1" for v in http.values()) / len(cards)
    assert 0.07 < share < 0.13, share
    assert {(r["served_version"], r["shadow_version"]) for r in shadows} == {("v1", "v1"), ("v2", "v1")}
    compared = orjson.loads(models_cli(system, "compare", "fraud"))
    [v1] = compared
    assert v1["shadow_version"] == "v1" and v1["events"] >= 1000
    # on the challenger's cards the shadow is the served model itself: full agreement there, less overall
    assert 0 < v1["agreement"] <= 1 and v1["served_versions"]["v1"] >= 70
    with contextlib.suppress(KeyError):
        assert v1["pearson"] is None or -1 <= v1["pearson"] <= 1
