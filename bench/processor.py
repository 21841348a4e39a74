"""The worker's own cost per event, without the broker: decode, score, update features, encode, hand to a producer.

    .venv/bin/python bench/processor.py [--events 50000] [--batch 100] [--profile out.prof]

Runs :class:`BatchProcessor` (the code the faust agents call) on in-memory records with the real Redis (db 4,
emptied, the same card histories as ``bench/stream.py``) and the models in ``artifacts/``; the producer only keeps
what it is given. Prints events/s and microseconds per event on one core, split by stage (wall clock of the
scorer's own ``Server-Timing`` stages is not used here: ``cProfile`` with ``--profile``). What this figure leaves
out (fetching from and producing to Kafka, faust's dispatch) is what ``bench/stream.py`` adds.
"""

from __future__ import annotations

import sys
from pathlib import Path

# ruff: noqa: E402 - bench/http.py shadows the standard library's ``http``: drop this folder from the path first
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import cProfile
import time
from collections.abc import Awaitable, Sequence
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import cpu_seconds
from bench.stream import BENCH_DB, Population, load_history
from stack import stack
from stream_scorer.bootstrap import build_services
from stream_scorer.config import RedisSettings, Settings
from stream_scorer.gc_tuning import tune_gc
from stream_scorer.heap_tuning import keep_freed_heap
from stream_scorer.worker.app import use_event_loop
from stream_scorer.worker.processor import BatchProcessor, Outgoing, OutputTopics, Record


class KeepingProducer:
    """Acknowledges at once; counts what it was given."""

    def __init__(self) -> None:
        self.records = 0
        self._done: asyncio.Future[None] | None = None

    async def send_all(self, records: Sequence[Outgoing]) -> Awaitable[Any]:
        self.records += len(records)
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            self._done.set_result(None)
        return self._done


async def run(args: argparse.Namespace) -> None:
    env = stack.ensure_up()
    host, port = env["REDIS_HOST"], int(env["REDIS_PORT"])
    pop = Population(args.cards, args.merchants)
    await load_history(pop, args.history, host, port)
    now = time.time()
    records = []
    for n in range(args.events):
        key, body = pop.event(f"tx-{n}", now - (args.events - n) * 0.001)
        records.append(Record("transactions", n % 6, n, now, key, orjson.dumps(body)))
    settings = Settings(redis=RedisSettings(host=host, port=port, db=BENCH_DB), model_dir=ROOT / "artifacts")
    async with build_services(settings) as services:
        producer = KeepingProducer()
        processor = BatchProcessor(services.scorer, producer, OutputTopics("d", "p", "dlq"), services.metrics)
        batches = [records[i:i + args.batch] for i in range(0, len(records), args.batch)]
        await processor.process_transactions(batches[0])  # warm up (Lua scripts loaded, ONNX sessions primed)
        tune_gc(settings.gc_threshold)  # as the worker does once started (GC_THRESHOLD=0: Python's defaults)
        keep_freed_heap(settings.heap_keep_mb)  # likewise (HEAP_KEEP_MB=0: glibc's defaults)
        redis_pid = int((await services.redis.info("server"))["process_id"])  # the stack's Redis, on this machine
        redis_before = cpu_seconds(redis_pid)
        profiler = cProfile.Profile() if args.profile else None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        for batch in batches[1:]:
            await processor.process_transactions(batch)
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        redis_cpu = cpu_seconds(redis_pid) - redis_before
    n = args.events - len(batches[0])
    print(f"{n:,} transactions in batches of {args.batch}: {n / wall:,.0f} events/s, "
          f"{wall / n * 1e6:.0f} us wall and {cpu / n * 1e6:.0f} us CPU (this process) per event; "
          f"{producer.records:,} records produced; Redis's CPU (reads and updates) {redis_cpu / n * 1e6:.0f} us "
          "per event")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--merchants", type=int, default=2_000)
    parser.add_argument("--history", type=int, default=5)
    parser.add_argument("--profile", help="write a cProfile of the timed part to this file")
    args = parser.parse_args()
    use_event_loop(Settings().worker.event_loop)  # the worker's loop
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
