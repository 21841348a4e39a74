"""HTTP benchmark: our API against the naive baseline, with wrk, in one run on this machine.

    .venv/bin/python bench/http.py [--cards 100000] [--duration 10] [--workers 1] [--batch-workers 2]

Starts (or reuses) the local stack, writes feature state for ``--cards`` cards into a Redis database of its
own (db 3), starts ``stream-scorer api`` and ``bench/naive_app.py`` with the same number of uvicorn processes,
then prints requests/s at 32 connections and p50/p99 latency at 4 connections for ``/score/fraud`` and
``/score/personalization``, the naive baseline's figures and the ratio, and rows/s of ``/score/batch`` (4
connections per server process), on that server and on one of ``--batch-workers`` processes (default: one per
core, as a throughput deployment runs it; several processes share one ``/metrics`` through prometheus_client's
multiprocess files, as with ``API_WORKERS``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# this file is named like the standard library's ``http`` package: keep its folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import tempfile
import time

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import tree_cpu_seconds
from stack import stack
from stack.apt import apt_install
from stack.errors import StackError
from stream_scorer.core.feature_state import SessionUpdate, TransactionUpdate
from stream_scorer.core.feature_store import RedisFeatureStore
from stream_scorer.core.features import DAY, FRAUD_FEATURE_NAMES
from stream_scorer.core.redis_client import FeatureRedis
from stream_scorer.models.registry import list_versions

BENCH_DB = 3
FRAUD_LUA = """
math.randomseed(os.time())
request = function()
  local card = string.format("card_%%08d", math.random(1, %(cards)d))
  local body = '{"card_id":"' .. card .. '","transaction_amount":' .. math.random(1, 900) .. '.5,' ..
    '"merchant_id":"merchant_' .. string.format("%%05d", math.random(1, 2000)) .. '","mcc_code":"5411",' ..
    '"country_code":"US"}'
  return wrk.format("POST", "/score/fraud", {["Content-Type"] = "application/json"}, body)
end
"""
PERSONALIZATION_LUA = """
math.randomseed(os.time())
request = function()
  local user = string.format("user_%%08d", math.random(1, %(users)d))
  local body = '{"user_id":"' .. user .. '","item_id":"item_electronics_' .. math.random(1, 500) .. '",' ..
    '"item_category":"electronics","item_price":' .. math.random(5, 500) .. '.0,"session_id":"s' ..
    math.random(1, 1000) .. '"}'
  return wrk.format("POST", "/score/personalization", {["Content-Type"] = "application/json"}, body)
end
"""
BATCH_LUA = """
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
local bodies, next_body = {}, 1
function init(args)
  -- %(bodies)d distinct bodies per wrk thread (random cards, merchants and amounts), sent in turn: Redis and the
  -- server see other cards on every request, as with real traffic
  math.randomseed(os.time() * 100 + (id or 0))
  for b = 1, %(bodies)d do
    local parts = {}
    for i = 1, %(rows)d do
      parts[#parts + 1] = string.format(
        '{"card_id":"card_%%08d","transaction_amount":%%d.0,"merchant_id":"merchant_%%05d","mcc_code":"5411"}',
        math.random(1, %(cards)d), math.random(1, 900), math.random(1, 2000))
    end
    bodies[b] = '{"model_type":"fraud_detection","requests":[' .. table.concat(parts, ",") .. ']}'
  end
end
request = function()
  local body = bodies[next_body]
  next_body = next_body %% #bodies + 1
  return wrk.format("POST", "/score/batch", {["Content-Type"] = "application/json"}, body)
end
"""


async def load_features(cards: int, users: int, redis_host: str, redis_port: int, model_file: Path) -> None:
    """Card windows (5 transactions each in the last day), user windows, and the naive app's feature hashes."""
    client = FeatureRedis(host=redis_host, port=redis_port, db=BENCH_DB, decode_responses=True)
    await client.flushdb()
    store = RedisFeatureStore(client)
    rng = random.Random(1)
    now = time.time()
    started = time.perf_counter()
    batch: list[TransactionUpdate] = []
    naive = client.pipeline(transaction=False)
    for c in range(1, cards + 1):
        card = f"card_{c:08d}"
        for k in range(5):
            batch.append(TransactionUpdate(f"{card}-{k}", card, now - rng.uniform(60, DAY), rng.uniform(5, 300), "US",
                                           f"merchant_{rng.randint(1, 2000):05d}", "5411"))
        naive.hset(f"naive:card:{card}", mapping={n: rng.uniform(0, 5) for n in FRAUD_FEATURE_NAMES})
        if len(batch) >= 5000:
            await store.apply_transactions(batch)
            await naive.execute()
            batch = []
            naive = client.pipeline(transaction=False)
    await store.apply_transactions(batch)
    await naive.execute()
    sessions: list[SessionUpdate] = []
    for u in range(1, users + 1):
        user = f"user_{u:08d}"
        for k in range(8):
            sessions.append(SessionUpdate(f"{user}-{k}", user, now - rng.uniform(60, 5 * DAY),
                                          rng.choice(["view", "view", "cart", "purchase"]),
                                          f"item_electronics_{rng.randint(1, 500)}", "electronics",
                                          rng.uniform(5, 500), f"s{rng.randint(1, 1000)}"))
        if len(sessions) >= 5000:
            await store.apply_session_events(sessions)
            sessions = []
    await store.apply_session_events(sessions)
    print(f"features loaded for {cards:,} cards and {users:,} users in {time.perf_counter() - started:.1f} s")
    await client.aclose()


def uvicorn_command(workers: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--workers", str(workers), "--log-level",
            "warning", "--no-access-log", "--loop", "uvloop", "--http", "httptools"]


def ours_server(base_env: dict[str, str], workers: int, metrics_root: Path) -> subprocess.Popen[bytes]:
    """Our API on port 18080; several processes get a metrics directory, as ``stream-scorer api`` gives them."""
    env = {**base_env, "API_PORT": "18080"}
    if workers > 1:
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(dir=metrics_root)
    return subprocess.Popen([*uvicorn_command(workers), "--factory", "http_api.app:create_app", "--port", "18080"],
                            env=env, cwd=ROOT)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=30)


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: see {proc.args!r}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready after {timeout}s")


def wrk(url: str, script: str, connections: int, duration: int, server_pid: int) -> dict[str, float]:
    """Throughput, latency, non-2xx count and the server's CPU per request (its process tree, ``/proc``)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    cpu_before = tree_cpu_seconds(server_pid)
    out = subprocess.run(["wrk", "-t", "1" if connections < 8 else "2", "-c", str(connections), "-d",
                          f"{duration}s", "--latency", "-s", f.name, url], capture_output=True, text=True,
                         check=True).stdout
    cpu = tree_cpu_seconds(server_pid) - cpu_before
    os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {p: _ms(re.search(rf"^\s+{p}%\s+([\d.]+\w+)", out, re.M).group(1))  # type: ignore[union-attr]
           for p in ("50", "99")}
    requests = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50_ms": lat["50"], "p99_ms": lat["99"], "errors": float(non2xx.group(1)) if non2xx else 0,
            "cpu_us": cpu / max(requests, 1) * 1e6}


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn processes for both apps")
    parser.add_argument("--batch-workers", type=int, default=os.cpu_count() or 1,
                        help="uvicorn processes of our app for a second /score/batch run (skipped if --workers)")
    parser.add_argument("--batch-rows", type=int, default=500)
    parser.add_argument("--model-dir", default=os.environ.get("MODEL_DIR", "artifacts"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        try:
            apt_install("wrk", "wrk")  # the load generator, Debian's package (once; as root)
        except StackError as exc:
            raise SystemExit(f"wrk is needed: {exc}") from None
    env = stack.ensure_up()
    model_dir = Path(args.model_dir)
    versions = list_versions(model_dir, "fraud")
    if not versions or not list_versions(model_dir, "personalization"):
        raise SystemExit(f"no models in {model_dir}: run `make train` first")
    model_file = model_dir / "fraud" / versions[-1] / "model.json"
    asyncio.run(load_features(args.cards, args.users, env["REDIS_HOST"], int(env["REDIS_PORT"]), model_file))
    base_env = {**os.environ, **env, "REDIS_DB": str(BENCH_DB), "MODEL_DIR": str(model_dir), "LOG_LEVEL": "WARNING",
                "NAIVE_MODEL_FILE": str(model_file), "PYTHONPATH": str(ROOT)}
    metrics_root = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    procs = [ours_server(base_env, args.workers, metrics_root),
             subprocess.Popen([*uvicorn_command(args.workers), "bench.naive_app:app", "--port", "18081"], env=base_env,
                              cwd=ROOT)]
    batch_script = BATCH_LUA % {"rows": args.batch_rows, "cards": args.cards, "bodies": 16}
    batches: dict[int, dict[str, float]] = {}
    try:
        wait_ready("http://127.0.0.1:18080/ready", procs[0])
        wait_ready("http://127.0.0.1:18081/docs", procs[1])
        fraud = FRAUD_LUA % {"cards": args.cards}
        rows: list[tuple[str, dict[str, float], dict[str, float]]] = []
        # the naive app is measured before and after ours; the ratio uses its better run (it varied most)
        ours, naive = procs[0].pid, procs[1].pid
        for name, url, script, pid in (
            ("naive baseline /score/fraud", "http://127.0.0.1:18081", fraud, naive),
            ("/score/fraud", "http://127.0.0.1:18080", fraud, ours),
            ("/score/personalization", "http://127.0.0.1:18080", PERSONALIZATION_LUA % {"users": args.users}, ours),
            ("naive baseline, again", "http://127.0.0.1:18081", fraud, naive),
        ):
            wrk(url, script, 32, 2, pid)  # warm-up
            rows.append((name, wrk(url, script, 32, args.duration, pid), wrk(url, script, 4, args.duration, pid)))
        wrk("http://127.0.0.1:18080", batch_script, 4 * args.workers, 2, ours)  # warm-up
        batches[args.workers] = wrk("http://127.0.0.1:18080", batch_script, 4 * args.workers, args.duration, ours)
        sample = httpx.post("http://127.0.0.1:18080/score/fraud", json={"card_id": "card_00000001",
                                                                         "transaction_amount": 10.0})
    finally:
        stop(procs)
    if args.batch_workers != args.workers:
        server = ours_server(base_env, args.batch_workers, metrics_root)
        try:
            wait_ready("http://127.0.0.1:18080/ready", server)
            # 4 connections per process: the kernel hands each new connection to whichever process accepts first,
            # so 4 for 2 processes often leave one with 1 or none (a one-process run in disguise)
            connections = 4 * args.batch_workers
            wrk("http://127.0.0.1:18080", batch_script, connections, 2, server.pid)  # warm-up
            batches[args.batch_workers] = wrk("http://127.0.0.1:18080", batch_script, connections, args.duration,
                                              server.pid)
        finally:
            stop([server])
    shutil.rmtree(metrics_root, ignore_errors=True)
    print(f"\nHTTP benchmark: {args.workers} uvicorn process(es) per app, wrk and Redis on the same "
          f"{os.cpu_count()}-core machine, {args.duration} s per run")
    print(f"{'endpoint':34} {'req/s @32':>10} {'p50 @4':>9} {'p99 @4':>9} {'non-2xx':>8} "
          f"{'server CPU/req @32 / @4':>24}")
    for name, c32, c4 in rows:
        print(f"{name:34} {c32['rps']:>10,.0f} {c4['p50_ms']:>7.2f}ms {c4['p99_ms']:>7.2f}ms "
              f"{c32['errors'] + c4['errors']:>8,.0f} {c32['cpu_us']:>15,.0f} / {c4['cpu_us']:,.0f} us")
    naive_rps = max(rows[0][1]["rps"], rows[3][1]["rps"])
    print(f"\n/score/fraud throughput vs naive baseline's better run: {rows[1][1]['rps'] / naive_rps:.2f}x "
          f"(features from windows + model + explanation vs one HGETALL + one inplace_predict)")
    for workers, batch in batches.items():
        print(f"/score/batch ({args.batch_rows} rows per request, {4 * workers} connections, {workers} server "
              f"process(es)): "
              f"{batch['rps'] * args.batch_rows:,.0f} rows/s, p50 {batch['p50_ms']:.1f} ms, "
              f"server CPU {batch['cpu_us'] / args.batch_rows:,.0f} us per row, non-2xx {batch['errors']:,.0f}")
    print(f"Server-Timing of one /score/fraud: {sample.headers.get('server-timing')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
