#!/usr/bin/env python3
"""Local real stack for stream-scorer: Redis + a single-node KRaft Kafka, no Docker.

Pure Python 3.11 standard library (runs before the project's venv exists).

    python3 stack/stack.py up [--kafka-version X]   # reuse what answers, start what is missing
    python3 stack/stack.py status                   # exit 0 when both are up
    python3 stack/stack.py env                      # KAFKA_BOOTSTRAP_SERVERS=... REDIS_HOST=... REDIS_PORT=...
    python3 stack/stack.py down [--purge]           # stop only what we started (by recorded pid)
    python3 stack/stack.py tool kafka-topics --bootstrap-server 127.0.0.1:9092 --list

Importable: ``from stack import stack`` then ``stack.ensure_up()``, ``stack.kafka_answers(host, port)``...
This module is the command line and the public facade; the work lives in its sibling modules:
``paths`` (state dir, pid/addr files, lock), ``addresses``, ``processes`` (spawn, liveness, stop by pid),
``redis_client`` / ``redis_service``, ``kafka_protocol`` / ``kafka_config`` / ``kafka_jars`` / ``kafka_service``,
``lifecycle`` (both services together).
All state lives under ``<project root>/.stack/`` (override with STACK_STATE_DIR).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # run as a script: sys.path[0] is stack/ itself, where `import stack` would find this file rather than the
    # package; the project root goes first so the sibling modules import as `stack.<module>`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stack.addresses import (
    DEFAULT_KAFKA,
    DEFAULT_REDIS,
    format_hostport,
    is_loopback,
    parse_bootstrap,
    parse_hostport,
    port_open,
)
from stack.errors import StackError, ToolMissing, log
from stack.kafka_config import (
    CLUSTER_ID_RE,
    DEFAULT_KAFKA_VERSION,
    LOG4J1_PROPERTIES,
    LOG4J2_PROPERTIES,
    NODE_ID,
    java_logging_flags,
    kafka_major,
    new_cluster_id,
    render_server_properties,
    valid_cluster_id,
    write_logging_configs,
)
from stack.kafka_jars import (
    FALLBACK_KAFKA_VERSION,
    check_java,
    fetch_kafka,
    installed_kafka_version,
    java_cmd,
    parse_java_version,
    resolve_kafka_version,
)
from stack.kafka_protocol import (
    API_API_VERSIONS,
    API_METADATA,
    CLIENT_ID,
    decode_api_versions_response,
    decode_metadata_response,
    encode_api_versions_request,
    encode_metadata_request,
    encode_request_header,
    frame,
    kafka_answers,
    kafka_api_versions,
    kafka_metadata,
    pick_metadata_version,
)
from stack.kafka_service import (
    KAFKA_START_TIMEOUT,
    TOOL_ALIASES,
    TOOL_ALIASES_3X,
    format_storage,
    kafka_address,
    kafka_bootstrap_list,
    kafka_up,
    run_tool,
    running_kafka_version,
)
from stack.lifecycle import down, ensure_up, service_env, status
from stack.paths import (
    POM,
    ROOT,
    STACK_DIR,
    addr_file,
    kafka_dir,
    kafka_home,
    kafka_libs,
    pid_file,
    redis_dir,
    state_dir,
    state_lock,
)
from stack.processes import (
    CMDLINE_MARKERS,
    STOP_TIMEOUT,
    our_pid,
    our_pid_at,
    pid_alive,
    pid_cmdline,
    read_pid,
    record_started,
    recorded_addr,
    spawn,
    stop_pid,
    tail,
    wait_until,
)
from stack.redis_client import (
    RedisReplyError,
    parse_redis_info,
    redis_command,
    redis_info,
    redis_ping,
    redis_version,
    resp_encode,
    resp_read,
)
from stack.redis_service import REDIS_START_TIMEOUT, find_redis_server, install_redis, redis_address, redis_up

__all__ = [
    "API_API_VERSIONS", "API_METADATA", "CLIENT_ID", "CLUSTER_ID_RE", "CMDLINE_MARKERS", "DEFAULT_KAFKA",
    "DEFAULT_KAFKA_VERSION", "DEFAULT_REDIS", "FALLBACK_KAFKA_VERSION", "KAFKA_START_TIMEOUT", "LOG4J1_PROPERTIES",
    "LOG4J2_PROPERTIES", "NODE_ID", "POM", "REDIS_START_TIMEOUT", "ROOT", "STACK_DIR", "STOP_TIMEOUT",
    "TOOL_ALIASES", "TOOL_ALIASES_3X", "RedisReplyError", "StackError", "ToolMissing",
    "addr_file", "check_java", "decode_api_versions_response", "decode_metadata_response", "down",
    "encode_api_versions_request", "encode_metadata_request", "encode_request_header", "ensure_up",
    "fetch_kafka", "find_redis_server", "format_hostport", "format_storage", "frame", "install_redis",
    "installed_kafka_version", "is_loopback", "java_cmd", "java_logging_flags", "kafka_address", "kafka_answers",
    "kafka_api_versions", "kafka_bootstrap_list", "kafka_dir", "kafka_home", "kafka_libs", "kafka_major",
    "kafka_metadata", "kafka_up", "log", "main", "new_cluster_id", "our_pid", "our_pid_at", "parse_bootstrap",
    "parse_hostport", "parse_java_version", "parse_redis_info", "pick_metadata_version", "pid_alive",
    "pid_cmdline", "pid_file", "port_open", "read_pid", "record_started", "recorded_addr", "redis_address",
    "redis_command", "redis_dir", "redis_info", "redis_ping", "redis_up", "redis_version",
    "render_server_properties", "resolve_kafka_version", "resp_encode", "resp_read", "run_tool",
    "running_kafka_version", "service_env", "spawn", "state_dir", "state_lock", "status", "stop_pid", "tail",
    "valid_cluster_id", "wait_until", "write_logging_configs",
]  # fmt: skip


def _print_status(st: dict[str, dict[str, Any]]) -> None:
    r, k = st["redis"], st["kafka"]
    for name, s in (("redis", r), ("kafka", k)):
        state = "up" if s["up"] else "down"
        who = f"started by stack (pid {s['pid']})" if s["pid"] else ("external" if s["up"] else "-")
        ver = s.get("version") or ("?" if s["up"] else "-")
        extra = ""
        if name == "kafka" and s["up"]:
            if not s["pid"]:
                ver = "unknown (external)"
            extra = (f"  cluster={s.get('cluster_id')} brokers={s.get('brokers')} "
                     f"apis={s.get('apis')} metadata={s.get('metadata_versions')}")  # fmt: skip
        print(f"{name:<6} {state:<5} {s['address']:<22} {who:<32} version {ver}{extra}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="stack.py", description="Local Redis + Kafka (KRaft) without Docker")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="start or reuse Redis and Kafka")
    p_up.add_argument("--kafka-version", default=None, help=f"Kafka release (default {DEFAULT_KAFKA_VERSION})")
    p_down = sub.add_parser("down", help="stop what stack started")
    p_down.add_argument("--purge", action="store_true", help="also delete .stack/kafka/data")
    p_st = sub.add_parser("status", help="show both services; exit 0 when both are up")
    p_st.add_argument("--kafka-version", default=None, help=argparse.SUPPRESS)
    sub.add_parser("env", help="print KAFKA_BOOTSTRAP_SERVERS / REDIS_HOST / REDIS_PORT lines")
    p_tool = sub.add_parser("tool", help="run a Kafka CLI class, e.g. `tool kafka-topics --list ...`")
    p_tool.add_argument("--kafka-version", default=None)
    p_tool.add_argument("args", nargs=argparse.REMAINDER)
    ns = ap.parse_args(argv)
    try:
        if ns.cmd == "up":
            t0 = time.monotonic()
            env = ensure_up(ns.kafka_version)
            log(f"up in {time.monotonic() - t0:.1f}s: " + " ".join(f"{k}={v}" for k, v in env.items()))
            return 0
        if ns.cmd == "down":
            down(purge=ns.purge)
            return 0
        if ns.cmd == "status":
            st = status()
            _print_status(st)
            return 0 if all(s["up"] for s in st.values()) else 1
        if ns.cmd == "env":
            for k, v in service_env().items():
                print(f"{k}={v}")
            return 0
        if ns.cmd == "tool":
            return run_tool(ns.args, ns.kafka_version)
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stack: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
