"""Stream benchmark: one worker process on the real broker, throughput and event-to-decision latency.

    .venv/bin/python bench/stream.py [--events 100000] [--rate 1000] [--duration 20] [--profile 10] [--workers 1]

Starts (or reuses) the local stack, creates fresh topics (unique suffix) and empties Redis db 4, writes a short
history for every card (``--history`` transactions in the last day, so the card windows are not empty), starts
ONE ``stream-scorer worker`` with the models in ``artifacts/`` (``--workers N``: N of them in one consumer group,
their CPU per event added up; the first is profiled and its memory reported), then:

0. capacity: ``--backlog`` transactions are written to the input topic *before* the worker starts; the worker
   drains them while the benchmark only polls end offsets (the load generator and the decision reader use no
   CPU meanwhile, as they would on other machines). Decisions/s from the first to the last backlog decision,
   both stamped by the broker; CPU per event of the worker, Redis and Kafka over the drain;
1. throughput: produces ``--events`` transactions as fast as aiokafka can (``--cards`` cards, ``--merchants``
   merchants) while the worker scores and the benchmark reads the decisions (all on the same two cores);
   decisions/s from the first input record to the last decision (distinct transaction ids);
2. latency: produces at a fixed ``--rate`` for ``--duration`` seconds and reports p50/p99/max of
   *decision appended on the broker* minus *input sent*: the decisions topic is created with
   ``message.timestamp.type=LogAppendTime`` (the broker stamps each decision when it stores it) and each input
   carries its send time (``time.time()`` at ``send()``) as ``timestamp``; ``scored_at - event_timestamp``
   from the decision body (excludes producing the decision) is printed next to it.

``--profile N`` records the worker with py-spy for N s during phase 0 (phase 1 without a backlog) and prints
where its time goes. The load generator, Kafka, Redis and the worker share the machine's cores; the benchmark's
topics are deleted at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path

# ruff: noqa: E402 - running this file puts bench/ on the import path, where bench/http.py shadows the standard
# library's ``http`` (httpx and prometheus_client import it): drop that folder before any other import
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.kafka_io import DECISION_PARTITIONS, DecisionReader, create_topics, produce_all
from bench.measure import cpu_seconds, rss_mb, service_pids, steal_seconds, summarize_profile
from stack import stack
from stream_scorer.core.feature_state import TransactionUpdate
from stream_scorer.core.feature_store import RedisFeatureStore
from stream_scorer.core.features import DAY
from stream_scorer.core.redis_client import FeatureRedis
from stream_scorer.models.registry import list_versions
from stream_scorer.worker.lag import LAG_INTERVAL_SEC

BENCH_DB = 4
MCCS = ["5411", "5812", "5999", "4111", "5732", "5311", "5541", "7011"]
COUNTRIES = ["US"] * 14 + ["GB", "FR", "DE", "CA", "NG", "BR"]


class Population:
    """Cards with a home country and a typical amount; merchants with an MCC."""

    def __init__(self, cards: int, merchants: int, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.cards = [(f"card_{i:08d}", self.rng.choice(COUNTRIES), self.rng.lognormvariate(3.5, 0.8))
                      for i in range(1, cards + 1)]
        self.merchants = [(f"merchant_{i:05d}", self.rng.choice(MCCS)) for i in range(1, merchants + 1)]

    def event(self, tx_id: str, ts: float) -> tuple[bytes, dict[str, object]]:
        card, country, typical = self.rng.choice(self.cards)
        merchant, mcc = self.rng.choice(self.merchants)
        if self.rng.random() < 0.03:
            country = self.rng.choice(COUNTRIES)
        return card.encode(), {
            "transaction_id": tx_id, "card_id": card, "merchant_id": merchant, "mcc_code": mcc,
            "country_code": country, "transaction_amount": round(max(0.5, self.rng.gauss(typical, typical / 3)), 2),
            "timestamp": datetime.fromtimestamp(ts, UTC).isoformat(),
        }


async def load_history(pop: Population, per_card: int, redis_host: str, redis_port: int) -> None:
    client = FeatureRedis(host=redis_host, port=redis_port, db=BENCH_DB, decode_responses=True)
    await client.flushdb()
    store = RedisFeatureStore(client)
    now = time.time()
    batch: list[TransactionUpdate] = []
    for card, country, typical in pop.cards:
        for k in range(per_card):
            merchant, mcc = pop.rng.choice(pop.merchants)
            batch.append(TransactionUpdate(f"{card}-h{k}", card, now - pop.rng.uniform(60, DAY), typical, country,
                                           merchant, mcc))
        if len(batch) >= 5000:
            await store.apply_transactions(batch)
            batch = []
    await store.apply_transactions(batch)
    await client.aclose()


def events(pop: Population, prefix: str, n: int) -> tuple[set[str], list[tuple[bytes, bytes]]]:
    now = time.time()
    bodies = [pop.event(f"{prefix}-{i:07d}", now + i * 1e-4) for i in range(n)]
    return {str(body["transaction_id"]) for _, body in bodies}, [(key, orjson.dumps(body)) for key, body in bodies]


async def throughput(bootstrap: str, topic: str, pop: Population, n: int, reader: DecisionReader,
                     on_start: Callable[[], object]) -> dict[str, float]:
    ids, payloads = events(pop, "t1", n)
    metas, produce_sec = await produce_all(bootstrap, topic, payloads, on_start)
    if not await reader.wait_for(ids, within=max(120.0, n / 500)):
        raise SystemExit(f"only {len(ids.intersection(reader.first))} of {n} decided")
    first_input_ms = min(m.timestamp for m in metas)
    last_decision_ms = max(reader.first[i][0] for i in ids)
    span = (last_decision_ms - first_input_ms) / 1000
    return {"events": n, "span_sec": span, "rate": n / span, "produce_sec": produce_sec,
            "produce_rate": n / produce_sec}


async def latency(bootstrap: str, topic: str, pop: Population, rate: float, duration: float,
                  reader: DecisionReader) -> dict[str, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    sent_at: dict[str, float] = {}
    futures = []
    try:
        total = int(rate * duration)
        start = time.monotonic()
        i = 0
        while i < total:
            due = min(total, int((time.monotonic() - start) * rate) + 1)
            while i < due:
                tx_id = f"t2-{i:07d}"
                ts = time.time()
                key, body = pop.event(tx_id, ts)
                futures.append(await producer.send(topic, orjson.dumps(body), key=key))
                sent_at[tx_id] = ts
                i += 1
            await asyncio.sleep(0.002)
        achieved = total / (time.monotonic() - start)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    if not await reader.wait_for(set(sent_at), within=60):
        raise SystemExit(f"only {len(set(sent_at).intersection(reader.first))} of {len(sent_at)} decided")
    e2e = np.array([reader.first[t][0] / 1000 - s for t, s in sent_at.items()]) * 1000
    scoring = np.array([reader.first[t][1] for t in sent_at]) * 1000
    return {"rate": achieved, "events": len(sent_at),
            "p50": float(np.percentile(e2e, 50)), "p99": float(np.percentile(e2e, 99)), "max": float(e2e.max()),
            "scored_p50": float(np.percentile(scoring, 50)), "scored_p99": float(np.percentile(scoring, 99))}


def batch_stats(port: int, topic: str) -> tuple[float, float]:
    """Mean batch size of the transactions agent and its number of batches, from the worker's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    total, count = (sum(float(v) for v in re.findall(rf'^stream_batch_size_{kind}\{{topic="{topic}"\}} (\S+)',
                                                      text, re.M)) for kind in ("sum", "count"))
    return (total / count if count else 0.0), count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=50_000,
                        help="phase 0: transactions written before the worker starts (0: skip)")
    parser.add_argument("--events", type=int, default=100_000, help="phase 1: transactions as fast as possible")
    parser.add_argument("--rate", type=float, default=1000.0, help="phase 2: input events per second")
    parser.add_argument("--duration", type=float, default=20.0, help="phase 2: seconds")
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--merchants", type=int, default=2000)
    parser.add_argument("--history", type=int, default=5, help="prior transactions per card written to Redis")
    parser.add_argument("--partitions", type=int, default=6, help="partitions of the input topics")
    parser.add_argument("--profile", type=float, default=0.0, help="py-spy the worker for N s during phase 0 (or 1)")
    parser.add_argument("--model-dir", default=os.environ.get("MODEL_DIR", "artifacts"))
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes in one consumer group (CPU per event is their sum)")
    args = parser.parse_args()
    model_dir = Path(args.model_dir)
    if not list_versions(model_dir, "fraud") or not list_versions(model_dir, "personalization"):
        raise SystemExit(f"no models in {model_dir}: run `make train` first")
    env = stack.ensure_up()
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    suffix = uuid.uuid4().hex[:8]
    topics = {f"TOPIC_{name.upper()}": f"bench-{name.replace('_', '-')}-{suffix}" for name in (
        "transactions", "sessions", "fraud_labels", "fraud_decisions", "personalization_scores", "dlq", "shadow")}
    pop = Population(args.cards, args.merchants)
    asyncio.run(load_history(pop, args.history, env["REDIS_HOST"], int(env["REDIS_PORT"])))
    asyncio.run(create_topics(bootstrap, topics, args.partitions))
    backlog, payloads = events(pop, "t0", args.backlog)
    if payloads:  # written before the worker starts: phase 0 measures how fast it drains them
        asyncio.run(produce_all(bootstrap, topics["TOPIC_TRANSACTIONS"], payloads))
    ports: list[int] = []
    workers: list[subprocess.Popen[bytes]] = []
    data_dir = tempfile.mkdtemp(prefix="bench-worker-")
    log_path = Path(data_dir) / "worker.log"
    for n in range(args.workers):  # one consumer group: the partitions are split between them
        with socket.socket() as sock:  # a free port for the worker's /metrics
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        worker_env = {**os.environ, **env, **topics, "TOPIC_INPUT_PARTITIONS": str(args.partitions),
                      "WORKER_APP_ID": f"bench-stream-{suffix}", "WORKER_DATA_DIR": f"{data_dir}/{n}",
                      "WORKER_METRICS_PORT": str(ports[n]), "REDIS_DB": str(BENCH_DB), "MODEL_DIR": str(model_dir),
                      "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
        with open(log_path if n == 0 else Path(data_dir) / f"worker-{n}.log", "wb") as log:
            workers.append(subprocess.Popen([sys.executable, "-m", "stream_scorer", "worker"], cwd=ROOT,
                                            env=worker_env, stdout=log, stderr=subprocess.STDOUT))
    profile_out = Path(data_dir) / "profile.txt"
    try:
        for worker, port in zip(workers, ports, strict=True):
            _wait_ready(port, worker, log_path)
        phase0, phase1, phase2, counts = asyncio.run(_phases(args, bootstrap, topics, pop, backlog,
                                                             [w.pid for w in workers], ports, profile_out))
        stats = [batch_stats(port, topics["TOPIC_TRANSACTIONS"]) for port in ports]
        batches = sum(count for _, count in stats)
        mean_batch = sum(mean * count for mean, count in stats) / max(1, batches)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        asyncio.run(create_topics(bootstrap, topics, args.partitions, delete=True))
    who = "one worker" if args.workers == 1 else f"{args.workers} workers in one group"
    print(f"\nStream benchmark: {who}, {args.partitions} input partitions, models from {model_dir}, "
          f"{os.cpu_count()} cores shared with Kafka, Redis and the load generator")
    rows = []
    if phase0:
        rows += [
            ("0. backlog drained, first -> last decision", f"{phase0['rate']:>12,.0f} /s",
             f"{phase0['events']:,.0f} written before the worker started"),
            ("0. CPU per event: worker / Redis / Kafka",
             f"{phase0['cpu_worker']:>5.0f} / {phase0.get('cpu_redis', 0):.0f} / {phase0.get('cpu_kafka', 0):.0f} us",
             f"steal {phase0['steal']:.0%}; over the last {phase0['measured']:,.0f} decisions"),
        ]
    rows += [
        ("1. producer (aiokafka, acks=all)", f"{phase1['produce_rate']:>12,.0f} /s", ""),
        ("1. scored, first input -> last decision", f"{phase1['rate']:>12,.0f} /s",
         f"{phase1['events']:,.0f} in {phase1['span_sec']:.1f} s"),
        ("1. CPU per event: worker / Redis / Kafka",
         f"{phase1['cpu_worker']:>5.0f} / {phase1.get('cpu_redis', 0):.0f} / {phase1.get('cpu_kafka', 0):.0f} us",
         f"steal {phase1['steal']:.0%} of the cores (other tenants of the host)"),
        ("1. max consumer lag seen on /metrics", f"{phase1['max_lag']:>15,.0f}",
         f"stream_consumer_lag (refreshed every {LAG_INTERVAL_SEC:.0f} s), 1 s samples"),
        ("2. input rate", f"{phase2['rate']:>12,.0f} /s", f"{phase2['events']:,.0f} events"),
        ("2. sent -> decision on broker, p50", f"{phase2['p50']:>12.1f} ms", ""),
        ("2. sent -> decision on broker, p99", f"{phase2['p99']:>12.1f} ms", f"max {phase2['max']:.0f} ms"),
        ("2. event_timestamp -> scored_at, p50 / p99", f"{phase2['scored_p50']:>6.1f} / {phase2['scored_p99']:.1f} ms",
         "excludes producing the decision"),
        ("decisions received / distinct (both phases)", f"{counts[0]:,} / {counts[1]:,}", ""),
        ("mean batch size (both phases)", f"{mean_batch:>15.0f}", f"{batches:,.0f} batches"),
        ("worker memory (RSS) after phase 0 / at the end",
         f"{phase0.get('rss_mb', 0):>5.0f} / {phase2['rss_mb']:.0f} MiB", ""),
    ]
    for name, figure, note in rows:
        print(f"{name:44} {figure:>15}   {note}".rstrip())
    if args.profile and profile_out.exists():
        summarize_profile(profile_out)
    print(f"\nworker log: {log_path}")
    return 0


async def _phases(args: argparse.Namespace, bootstrap: str, topics: dict[str, str], pop: Population,
                  backlog: set[str], pids: list[int], ports: list[int], profile_out: Path
                  ) -> tuple[dict[str, float], dict[str, float], dict[str, float], tuple[int, int]]:
    pid = pids[0]  # profiled, and its memory reported
    processes = {**{f"worker{n}": p for n, p in enumerate(pids)}, **service_pids()}
    decisions = topics["TOPIC_FRAUD_DECISIONS"]
    spies: list[subprocess.Popen[bytes]] = []

    def start_profile() -> None:
        if args.profile and not spies:
            spies.append(subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid),
                                           "-d", str(int(args.profile)), "-f", "raw", "-o", str(profile_out),
                                           "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    if backlog:
        start_profile()  # the worker alone on the machine with Kafka and Redis: its own costs, least disturbed
    phase0 = await _drain(bootstrap, decisions, backlog, processes)
    reader = DecisionReader(bootstrap, decisions)
    await reader.start()
    lags: list[float] = [0.0]
    sampling: asyncio.Future[None] | None = None
    try:
        if backlog:
            if not await reader.wait_for(backlog, within=60):
                raise SystemExit(f"only {len(backlog.intersection(reader.first))} of {len(backlog)} backlog "
                                 "transactions decided")
            stamps = [reader.first[i][0] for i in backlog]
            phase0["rate"] = len(backlog) / max(1e-3, (max(stamps) - min(stamps)) / 1000)
            # the gauge is refreshed every few seconds: wait until it no longer shows the backlog's lag
            await _wait_for_lag(ports, topics["TOPIC_TRANSACTIONS"], 0.0, within=3 * LAG_INTERVAL_SEC)
        sampling = asyncio.ensure_future(_sample_lag(ports, topics["TOPIC_TRANSACTIONS"], lags))
        cpu_before, steal_before = {n: cpu_seconds(p) for n, p in processes.items()}, steal_seconds()
        wall = time.monotonic()
        phase1 = await throughput(bootstrap, topics["TOPIC_TRANSACTIONS"], pop, args.events, reader, start_profile)
        cpu_after, steal_after = {n: cpu_seconds(p) for n, p in processes.items()}, steal_seconds()
        for name in processes:
            phase1[f"cpu_{name}"] = (cpu_after[name] - cpu_before[name]) / args.events * 1e6
        _sum_workers(phase1)
        phase1["steal"] = (steal_after - steal_before) / (os.cpu_count() or 1) / (time.monotonic() - wall)
        sampling.cancel()
        phase1["max_lag"] = max(lags)
        for spy in spies:
            await asyncio.get_running_loop().run_in_executor(None, spy.wait)
        await asyncio.sleep(2)  # let the worker commit and idle
        phase2 = await latency(bootstrap, topics["TOPIC_TRANSACTIONS"], pop, args.rate, args.duration, reader)
        phase2["rss_mb"] = rss_mb(pid)
    finally:
        if sampling is not None:
            sampling.cancel()
        await reader.stop()
    return phase0, phase1, phase2, (reader.records, len(reader.first))


async def _drain(bootstrap: str, decisions: str, backlog: set[str], processes: dict[str, int]) -> dict[str, float]:
    """Phase 0: wait (polling end offsets only) until the worker has decided the backlog; CPU per event from
    the decisions written after this started (the worker may have begun before it was ready)."""
    if not backlog:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(decisions, p) for p in range(DECISION_PARTITIONS)]
        done_before = sum((await consumer.end_offsets(tps)).values())
        cpu_before, steal_before, wall = ({n: cpu_seconds(p) for n, p in processes.items()}, steal_seconds(),
                                          time.monotonic())
        deadline = wall + max(120.0, len(backlog) / 500)
        while (done := sum((await consumer.end_offsets(tps)).values())) < len(backlog):
            if time.monotonic() > deadline:
                raise SystemExit(f"the worker decided {done:,} of the {len(backlog):,} backlog transactions")
            await asyncio.sleep(0.25)
        cpu_after, steal_after = {n: cpu_seconds(p) for n, p in processes.items()}, steal_seconds()
    finally:
        await consumer.stop()
    measured = max(1, len(backlog) - done_before)
    out = {f"cpu_{n}": (cpu_after[n] - cpu_before[n]) / measured * 1e6 for n in processes}
    _sum_workers(out)
    out["rss_mb"] = rss_mb(processes["worker0"])
    out["steal"] = (steal_after - steal_before) / (os.cpu_count() or 1) / (time.monotonic() - wall)
    out["events"] = len(backlog)
    out["measured"] = measured
    return out


def _sum_workers(figures: dict[str, float]) -> None:
    """``cpu_worker``: the worker processes' CPU per event, together."""
    figures["cpu_worker"] = sum(v for k, v in figures.items() if re.fullmatch(r"cpu_worker\d+", k))


async def _sample_lag(ports: list[int], topic: str, out: list[float]) -> None:
    """The workers' ``stream_consumer_lag`` summed over the input partitions, once a second."""
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            await asyncio.sleep(1.0)
            with contextlib.suppress(httpx.HTTPError):
                out.append(await _read_lag(client, ports, topic))


async def _wait_for_lag(ports: list[int], topic: str, at_most: float, within: float) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if await _read_lag(client, ports, topic) <= at_most:
                    return
            await asyncio.sleep(0.5)


async def _read_lag(client: httpx.AsyncClient, ports: list[int], topic: str) -> float:
    pattern = re.compile(rf'^stream_consumer_lag\{{partition="\d+",topic="{re.escape(topic)}"\}} (\S+)$', re.M)
    texts = [(await client.get(f"http://127.0.0.1:{port}/metrics")).text for port in ports]
    return sum(float(v) for text in texts for v in pattern.findall(text))


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return
        time.sleep(0.3)
    raise SystemExit(f"worker not ready (exit code {proc.poll()}):\n{log_path.read_text()[-3000:]}")


if __name__ == "__main__":
    raise SystemExit(main())
