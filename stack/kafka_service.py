"""Kafka service: reuse the broker at ``KAFKA_BOOTSTRAP_SERVERS`` when it answers, else run a combined
broker+controller KRaft node on loopback from the fetched jars; also runs Kafka's CLI tools."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from stack.addresses import DEFAULT_KAFKA, format_hostport, is_loopback, parse_bootstrap, port_open
from stack.errors import StackError, log
from stack.kafka_config import (
    DEFAULT_KAFKA_VERSION,
    NODE_ID,
    kafka_major,
    new_cluster_id,
    render_server_properties,
    valid_cluster_id,
    write_logging_configs,
)
from stack.kafka_jars import check_java, fetch_kafka, java_cmd, resolve_kafka_version
from stack.kafka_protocol import kafka_answers
from stack.paths import kafka_dir
from stack.processes import our_pid, our_pid_at, pid_alive, record_started, spawn, stop_pid, tail, wait_until

KAFKA_START_TIMEOUT = 90.0

# short names for Kafka's CLI main classes (4.x layout), used by `stack.py tool NAME ...`
TOOL_ALIASES = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-storage": "kafka.tools.StorageTool",
    "kafka-metadata-quorum": "org.apache.kafka.tools.MetadataQuorumCommand",
}


# where 3.x keeps them instead
TOOL_ALIASES_3X = {"kafka-console-producer": "kafka.tools.ConsoleProducer"}


def kafka_address() -> tuple[str, int]:
    raw = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_KAFKA
    return parse_bootstrap(raw)[0]


def kafka_bootstrap_list() -> list[tuple[str, int]]:
    return parse_bootstrap(os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_KAFKA)


def running_kafka_version() -> str | None:
    try:
        return (kafka_dir() / "running.version").read_text().strip() or None
    except OSError:
        return None


def format_storage(version: str, props: Path) -> None:
    kd = kafka_dir()
    data = kd / "data"
    if (data / "meta.properties").exists():
        fmt_v = (kd / "formatted.version").read_text().strip() if (kd / "formatted.version").exists() else None
        if fmt_v and fmt_v.split(".")[:2] != version.split(".")[:2] and kafka_major(fmt_v) >= kafka_major(version):
            raise StackError(
                f"{data} was formatted by Kafka {fmt_v}; run `python3 stack/stack.py down --purge` to use {version}"
            )
        return
    cid_file = kd / "cluster.id"
    cid = cid_file.read_text().strip() if cid_file.exists() else ""
    if not valid_cluster_id(cid):
        cid = new_cluster_id()
        cid_file.write_text(cid + "\n")
    data.mkdir(parents=True, exist_ok=True)
    cmd = java_cmd(version, "kafka.tools.StorageTool", "format", "-t", cid, "-c", str(props), "--ignore-formatted",
                   heap="256m", tools=True)  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=str(kd), stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        print((res.stdout + res.stderr)[-4000:], file=sys.stderr)
        raise StackError(f"kafka.tools.StorageTool format failed (exit {res.returncode})")
    (kd / "formatted.version").write_text(version + "\n")
    log(f"formatted KRaft storage in {data} (cluster id {cid})")


def kafka_up(version: str | None = None) -> dict[str, Any]:
    host, port = kafka_address()
    addr = format_hostport(host, port)
    for h, p in kafka_bootstrap_list():
        if kafka_answers(h, p):
            a = format_hostport(h, p)
            pid, _ = our_pid_at("kafka", a)
            log(f"kafka already up at {a} ({f'ours, pid {pid}' if pid else 'external'}), reusing it")
            return {"service": "kafka", "host": h, "port": p, "address": a, "pid": pid, "started": False,
                    "version": running_kafka_version() if pid else None}  # fmt: skip
    kd = kafka_dir()
    log_path = kd / "kafka.log"
    pid, elsewhere = our_pid_at("kafka", addr)
    if pid is not None:
        log(f"our kafka (pid {pid}) is alive but not answering yet; waiting")
        if wait_until(lambda: kafka_answers(host, port, NODE_ID) is not None, KAFKA_START_TIMEOUT, pid, 0.5):
            return {"service": "kafka", "host": host, "port": port, "address": addr, "pid": pid, "started": False,
                    "version": running_kafka_version()}  # fmt: skip
        print(tail(log_path), file=sys.stderr)
        raise StackError(f"our kafka (pid {pid}) does not answer on {addr}; see {log_path} (or run `down`)")
    if port_open(host, port):
        raise StackError(f"port {port} on {host} is taken by something that does not answer a Kafka Metadata request")
    if elsewhere:
        raise StackError(
            f"our kafka runs at {elsewhere} (pid {our_pid('kafka')}); run `python3 stack/stack.py down` "
            f"before starting one at {addr}"
        )
    if not is_loopback(host):
        raise StackError(f"no Kafka answers at {addr} and stack can only start one on loopback")
    cport = int(os.environ.get("KAFKA_CONTROLLER_PORT") or port + 1)
    if port_open(host, cport):
        raise StackError(f"controller port {cport} on {host} is already taken (set KAFKA_CONTROLLER_PORT)")
    t0 = time.monotonic()
    check_java(version or os.environ.get("KAFKA_VERSION") or DEFAULT_KAFKA_VERSION)
    version, _libs = resolve_kafka_version(version)
    check_java(version)
    kd.mkdir(parents=True, exist_ok=True)
    write_logging_configs()
    props = kd / "server.properties"
    props.write_text(render_server_properties(kd / "data", version, host, port, cport))
    format_storage(version, props)
    t1 = time.monotonic()
    proc = spawn(java_cmd(version, "kafka.Kafka", str(props)), log_path, kd)
    record_started("kafka", proc.pid, addr)
    (kd / "running.version").write_text(version + "\n")
    ok = wait_until(lambda: kafka_answers(host, port, NODE_ID) is not None, KAFKA_START_TIMEOUT, proc.pid, 0.5)
    if not ok:
        why = "exited" if not pid_alive(proc.pid) else f"did not serve metadata within {KAFKA_START_TIMEOUT:.0f}s"
        print(tail(log_path), file=sys.stderr)
        stop_pid("kafka", timeout=5)
        raise StackError(f"kafka {version} on {addr} {why} (log: {log_path})")
    log(f"kafka {version} started at {addr} (pid {proc.pid}, broker ready in {time.monotonic() - t1:.1f}s, "
        f"total {time.monotonic() - t0:.1f}s)")  # fmt: skip
    return {"service": "kafka", "host": host, "port": port, "address": addr, "pid": proc.pid, "started": True,
            "version": version}  # fmt: skip


def run_tool(args: list[str], version: str | None = None) -> int:
    """Run one of Kafka's CLI main classes with the fetched jars (WARN-level logging to stderr)."""
    if not args:
        raise StackError("usage: stack.py tool <main-class|alias> [args...]; aliases: " + ", ".join(TOOL_ALIASES))
    version = version or running_kafka_version() or os.environ.get("KAFKA_VERSION") or DEFAULT_KAFKA_VERSION
    fetch_kafka(version)
    write_logging_configs()
    aliases = TOOL_ALIASES if kafka_major(version) >= 4 else {**TOOL_ALIASES, **TOOL_ALIASES_3X}
    main = aliases.get(args[0], args[0])
    return subprocess.call(java_cmd(version, main, *args[1:], heap="256m", tools=True))
