"""Both services together: bring them up (or reuse them), stop what we started, report their status."""

from __future__ import annotations

import contextlib
import shutil
from typing import Any

from stack.addresses import format_hostport
from stack.errors import StackError, log
from stack.kafka_protocol import API_METADATA, kafka_answers
from stack.kafka_service import kafka_address, kafka_bootstrap_list, kafka_up, running_kafka_version
from stack.paths import kafka_dir, state_lock
from stack.processes import our_pid, our_pid_at, stop_pid
from stack.redis_client import redis_ping, redis_version
from stack.redis_service import redis_address, redis_up


def ensure_up(kafka_version: str | None = None) -> dict[str, str]:
    """Start (or reuse) Redis and Kafka; return the env a client needs:
    {'KAFKA_BOOTSTRAP_SERVERS': '127.0.0.1:9092', 'REDIS_HOST': '127.0.0.1', 'REDIS_PORT': '6379'}."""
    with state_lock():
        r = redis_up()
        k = kafka_up(kafka_version)
    return {"KAFKA_BOOTSTRAP_SERVERS": k["address"], "REDIS_HOST": r["host"], "REDIS_PORT": str(r["port"])}


def down(purge: bool = False) -> None:
    with state_lock():
        stopped_any = False
        for service in ("kafka", "redis"):
            if stop_pid(service):
                stopped_any = True
            else:
                log(f"{service}: nothing of ours to stop")
        (kafka_dir() / "running.version").unlink(missing_ok=True)
        if purge:
            data = kafka_dir() / "data"
            if our_pid("kafka") is None and data.exists():
                shutil.rmtree(data)
                (kafka_dir() / "formatted.version").unlink(missing_ok=True)
                log(f"purged {data}")
        if stopped_any:
            log("down")


def status() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    host, port = redis_address()
    pid, _ = our_pid_at("redis", format_hostport(host, port))
    up = False
    with contextlib.suppress(StackError):
        up = redis_ping(host, port)
    out["redis"] = {"up": up, "address": format_hostport(host, port), "pid": pid,
                    "version": redis_version(host, port) if up else None}  # fmt: skip
    kaddr = format_hostport(*kafka_address())
    kpid, _ = our_pid_at("kafka", kaddr)
    kinfo: dict[str, Any] = {"up": False, "address": kaddr, "pid": kpid, "version": None}
    for h, p in kafka_bootstrap_list():
        meta = kafka_answers(h, p)
        if meta:
            kpid, _ = our_pid_at("kafka", format_hostport(h, p))
            kinfo["pid"] = kpid
            lo, hi = meta["api_versions"].get(API_METADATA, (None, None))
            kinfo.update(up=True, address=format_hostport(h, p), cluster_id=meta.get("cluster_id"),
                         brokers=[b["node_id"] for b in meta["brokers"]], apis=len(meta["api_versions"]),
                         metadata_versions=f"v{lo}-v{hi}")  # fmt: skip
            kinfo["version"] = running_kafka_version() if kpid else None
            break
    out["kafka"] = kinfo
    return out


def service_env() -> dict[str, str]:
    """Addresses of the services that answer right now (raises StackError when one is down)."""
    st = status()
    missing = [s for s, v in st.items() if not v["up"]]
    if missing:
        raise StackError(f"{' and '.join(missing)} not running: run `python3 stack/stack.py up`")
    rhost, rport = redis_address()
    return {"KAFKA_BOOTSTRAP_SERVERS": st["kafka"]["address"], "REDIS_HOST": rhost, "REDIS_PORT": str(rport)}
