#!/usr/bin/env python3
"""Local real stack for stream-scorer: Redis + a single-node KRaft Kafka, no Docker.

Pure Python 3.11 standard library (runs before the project's venv exists).

    python3 stack/stack.py up [--kafka-version X]   # reuse what answers, start what is missing
    python3 stack/stack.py status                   # exit 0 when both are up
    python3 stack/stack.py env                      # KAFKA_BOOTSTRAP_SERVERS=... REDIS_HOST=... REDIS_PORT=...
    python3 stack/stack.py down [--purge]           # stop only what we started (by recorded pid)
    python3 stack/stack.py tool kafka-topics --bootstrap-server 127.0.0.1:9092 --list

Importable: ``from stack.stack import ensure_up, kafka_metadata, redis_ping``.
All state lives under ``<project root>/.stack/`` (override with STACK_STATE_DIR).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import ipaddress
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STACK_DIR = Path(__file__).resolve().parent
POM = STACK_DIR / "pom.xml"

DEFAULT_KAFKA_VERSION = "4.0.2"
FALLBACK_KAFKA_VERSION = "3.9.1"
DEFAULT_REDIS = "127.0.0.1:6379"
DEFAULT_KAFKA = "127.0.0.1:9092"
NODE_ID = 1
KAFKA_START_TIMEOUT = 90.0
REDIS_START_TIMEOUT = 15.0
STOP_TIMEOUT = 20.0
CLIENT_ID = "stream-scorer-stack"

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


class StackError(Exception):
    """A failure with a one-line, user-facing message."""


class ToolMissing(StackError):
    """A required program (java, mvn, redis-server) is not installed."""


def log(msg: str) -> None:
    print(f"stack: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# paths / state
# --------------------------------------------------------------------------------------------


def state_dir() -> Path:
    env = os.environ.get("STACK_STATE_DIR")
    return Path(env).resolve() if env else ROOT / ".stack"


def pid_file(service: str) -> Path:
    return state_dir() / f"{service}.pid"


def addr_file(service: str) -> Path:
    return state_dir() / f"{service}.addr"


def kafka_home(version: str) -> Path:
    return state_dir() / f"kafka-{version}"


def kafka_libs(version: str) -> Path:
    return kafka_home(version) / "libs"


def kafka_dir() -> Path:
    return state_dir() / "kafka"


def redis_dir() -> Path:
    return state_dir() / "redis"


@contextlib.contextmanager
def state_lock() -> Iterator[None]:
    """Serialise up/down between concurrent callers (e.g. parallel pytest workers)."""
    state_dir().mkdir(parents=True, exist_ok=True)
    with open(state_dir() / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# address parsing / port probing
# --------------------------------------------------------------------------------------------


def parse_hostport(text: str, default_port: int) -> tuple[str, int]:
    """'h:p', 'h', '[::1]:p', 'PLAINTEXT://h:p' -> (host, port)."""
    s = text.strip()
    if "://" in s:
        s = s.split("://", 1)[1]
    s = s.rstrip("/")
    if not s:
        raise StackError(f"empty address {text!r}")
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            raise StackError(f"bad address {text!r}")
        host, rest = s[1:end], s[end + 1 :]
        if rest and not rest.startswith(":"):
            raise StackError(f"bad address {text!r}")
        port_s = rest[1:] if rest else ""
    elif s.count(":") == 1:
        host, port_s = s.split(":")
    elif ":" in s:  # bare IPv6 without brackets: no port
        host, port_s = s, ""
    else:
        host, port_s = s, ""
    if not port_s:
        return host, default_port
    if not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise StackError(f"bad port in address {text!r}")
    return host, int(port_s)


def parse_bootstrap(text: str, default_port: int = 9092) -> list[tuple[str, int]]:
    """'a:9092, b:9093' -> [(a, 9092), (b, 9093)]."""
    out = [parse_hostport(p, default_port) for p in text.split(",") if p.strip()]
    if not out:
        raise StackError(f"no address in {text!r}")
    return out


def format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by peer")
        buf += chunk
    return bytes(buf)


# --------------------------------------------------------------------------------------------
# Redis (RESP)
# --------------------------------------------------------------------------------------------


def resp_encode(*args: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _Reader:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed by peer")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(max(4096, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("connection closed by peer")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


def resp_read(reader: _Reader) -> Any:
    """Read one RESP2 value. Errors come back as RedisReplyError instances (not raised)."""
    line = reader.line()
    if not line:
        raise ValueError("empty RESP line")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RedisReplyError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = reader.exact(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [resp_read(reader) for _ in range(n)]
    raise ValueError(f"not a RESP reply: {line[:40]!r}")


class RedisReplyError(Exception):
    pass


def redis_command(host: str, port: int, *args: str, timeout: float = 2.0) -> Any:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(resp_encode(*args))
        return resp_read(_Reader(sock))


def redis_ping(host: str = "127.0.0.1", port: int = 6379, timeout: float = 2.0) -> bool:
    """True when a real Redis answers PING with PONG on host:port."""
    try:
        reply = redis_command(host, port, "PING", timeout=timeout)
    except (OSError, ValueError):
        return False
    if isinstance(reply, RedisReplyError):
        if "NOAUTH" in str(reply) or "WRONGPASS" in str(reply):
            raise StackError(
                f"Redis at {format_hostport(host, port)} requires a password; stack only handles open Redis"
            )
        return False
    return reply == "PONG"


def parse_redis_info(text: str | bytes) -> dict[str, str]:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        out[k.strip()] = v.strip()
    return out


def redis_info(host: str, port: int, section: str = "server") -> dict[str, str]:
    reply = redis_command(host, port, "INFO", section)
    if isinstance(reply, RedisReplyError) or not isinstance(reply, bytes):
        raise StackError(f"Redis at {format_hostport(host, port)} refused INFO: {reply}")
    return parse_redis_info(reply)


def redis_version(host: str, port: int) -> str:
    try:
        return redis_info(host, port).get("redis_version", "?")
    except (OSError, ValueError, StackError):
        return "?"


# --------------------------------------------------------------------------------------------
# Kafka wire protocol (just ApiVersions v0 and Metadata v1..v8, non-flexible versions)
# --------------------------------------------------------------------------------------------

API_METADATA = 3
API_API_VERSIONS = 18


def _kstr(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def encode_request_header(api_key: int, api_version: int, correlation_id: int, client_id: str | None) -> bytes:
    """Request header v1: api_key, api_version, correlation_id, nullable client_id."""
    return struct.pack(">hhi", api_key, api_version, correlation_id) + _kstr(client_id)


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def encode_api_versions_request(correlation_id: int = 1, client_id: str | None = CLIENT_ID) -> bytes:
    return frame(encode_request_header(API_API_VERSIONS, 0, correlation_id, client_id))


def encode_metadata_request(
    version: int = 1,
    topics: list[str] | None = None,
    correlation_id: int = 1,
    client_id: str | None = CLIENT_ID,
    allow_auto_topic_creation: bool = False,
) -> bytes:
    """Metadata request v1..v8. ``topics=None`` means all topics, ``[]`` means none."""
    if not 1 <= version <= 8:
        raise ValueError(f"Metadata v{version} not supported by this encoder (1..8)")
    body = bytearray()
    if topics is None:
        body += struct.pack(">i", -1)
    else:
        body += struct.pack(">i", len(topics))
        for t in topics:
            body += _kstr(t)
    if version >= 4:
        body += struct.pack(">?", allow_auto_topic_creation)
    if version >= 8:
        body += struct.pack(">??", False, False)  # include cluster/topic authorized operations
    return frame(encode_request_header(API_METADATA, version, correlation_id, client_id) + bytes(body))


class _Buf:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError("truncated Kafka response")
        vals = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return vals[0] if len(vals) == 1 else vals

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        if self.pos + n > len(self.data):
            raise ValueError("truncated Kafka response")
        s = self.data[self.pos : self.pos + n].decode(errors="replace")
        self.pos += n
        return s

    def array_len(self) -> int:
        return self.take(">i")


def decode_api_versions_response(payload: bytes, correlation_id: int | None = None) -> dict[int, tuple[int, int]]:
    """ApiVersions v0 response body (after the size prefix) -> {api_key: (min, max)}."""
    b = _Buf(payload)
    corr = b.take(">i")
    if correlation_id is not None and corr != correlation_id:
        raise ValueError(f"correlation id mismatch ({corr} != {correlation_id})")
    err = b.take(">h")
    if err != 0:
        raise ValueError(f"ApiVersions error code {err}")
    out: dict[int, tuple[int, int]] = {}
    for _ in range(max(b.array_len(), 0)):
        key, lo, hi = b.take(">hhh")
        out[key] = (lo, hi)
    return out


def decode_metadata_response(payload: bytes, version: int = 1, correlation_id: int | None = None) -> dict[str, Any]:
    """Metadata response v1..v8 body (after the size prefix)."""
    b = _Buf(payload)
    corr = b.take(">i")
    if correlation_id is not None and corr != correlation_id:
        raise ValueError(f"correlation id mismatch ({corr} != {correlation_id})")
    out: dict[str, Any] = {"version": version, "throttle_time_ms": 0, "cluster_id": None}
    if version >= 3:
        out["throttle_time_ms"] = b.take(">i")
    brokers = []
    for _ in range(max(b.array_len(), 0)):
        node_id = b.take(">i")
        host = b.string()
        port = b.take(">i")
        rack = b.string()
        brokers.append({"node_id": node_id, "host": host, "port": port, "rack": rack})
    out["brokers"] = brokers
    if version >= 2:
        out["cluster_id"] = b.string()
    out["controller_id"] = b.take(">i")
    topics = []
    for _ in range(max(b.array_len(), 0)):
        t: dict[str, Any] = {"error_code": b.take(">h"), "name": b.string(), "is_internal": b.take(">?")}
        parts = []
        for _ in range(max(b.array_len(), 0)):
            p: dict[str, Any] = {"error_code": b.take(">h"), "partition": b.take(">i"), "leader": b.take(">i")}
            if version >= 7:
                p["leader_epoch"] = b.take(">i")
            p["replicas"] = [b.take(">i") for _ in range(max(b.array_len(), 0))]
            p["isr"] = [b.take(">i") for _ in range(max(b.array_len(), 0))]
            if version >= 5:
                p["offline_replicas"] = [b.take(">i") for _ in range(max(b.array_len(), 0))]
            parts.append(p)
        t["partitions"] = parts
        if version >= 8:
            t["authorized_operations"] = b.take(">i")
        topics.append(t)
    out["topics"] = topics
    if version >= 8:
        out["cluster_authorized_operations"] = b.take(">i")
    return out


def _kafka_roundtrip(sock: socket.socket, request: bytes) -> bytes:
    sock.sendall(request)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    if not 0 < size < 64 * 1024 * 1024:
        raise ValueError(f"implausible Kafka response size {size}")
    return _recv_exact(sock, size)


def pick_metadata_version(api_versions: dict[int, tuple[int, int]]) -> int:
    """Metadata version to use: v2 (v1 plus cluster id) or v1, else the lowest of v3..v8 the
    broker accepts (Kafka 4.0 briefly dropped v0-v3, KAFKA-18648)."""
    if API_METADATA not in api_versions:
        raise ValueError("broker does not advertise Metadata")
    lo, hi = api_versions[API_METADATA]
    for v in (2, 1, 3, 4, 5, 6, 7, 8):
        if lo <= v <= hi:
            return v
    raise ValueError(f"broker supports only Metadata v{lo}..v{hi}, we speak v1..v8")


def kafka_api_versions(host: str, port: int, timeout: float = 3.0) -> dict[int, tuple[int, int]]:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        return decode_api_versions_response(_kafka_roundtrip(sock, encode_api_versions_request(1)), 1)


def kafka_metadata(
    host: str = "127.0.0.1", port: int = 9092, topics: Sequence[str] | None = (), timeout: float = 3.0
) -> dict[str, Any]:
    """ApiVersions v0 then Metadata (v1, or the lowest v<=8 the broker accepts) over one connection.

    Returns the decoded Metadata response plus ``api_versions``. ``topics=()`` asks for no topics,
    ``None`` for all. Raises OSError/ValueError when nothing Kafka-like answers.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        apis = decode_api_versions_response(_kafka_roundtrip(sock, encode_api_versions_request(1)), 1)
        version = pick_metadata_version(apis)
        req = encode_metadata_request(version, None if topics is None else list(topics), correlation_id=2)
        meta = decode_metadata_response(_kafka_roundtrip(sock, req), version, 2)
    meta["api_versions"] = apis
    return meta


def kafka_answers(host: str, port: int, node_id: int | None = None, timeout: float = 3.0) -> dict[str, Any] | None:
    """Metadata when a real Kafka answers (and lists ``node_id`` if given), else None."""
    try:
        meta = kafka_metadata(host, port, timeout=timeout)
    except (OSError, ValueError):
        return None
    if not meta["brokers"]:
        return None
    if node_id is not None and node_id not in {b["node_id"] for b in meta["brokers"]}:
        return None
    return meta


# --------------------------------------------------------------------------------------------
# Kafka config rendering
# --------------------------------------------------------------------------------------------


def new_cluster_id() -> str:
    """Like Kafka's Uuid.randomUuid().toString(): 16 random bytes, URL-safe base64, no padding."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):  # Kafka avoids a leading '-' (it reads as a CLI flag)
            return cid


CLUSTER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")


def valid_cluster_id(cid: str) -> bool:
    if not CLUSTER_ID_RE.match(cid):
        return False
    raw = base64.urlsafe_b64decode(cid + "==")
    return len(raw) == 16 and raw != bytes(16)


def kafka_major(version: str) -> int:
    m = re.match(r"^(\d+)\.", version)
    if not m:
        raise StackError(f"bad Kafka version {version!r}")
    return int(m.group(1))


def render_server_properties(
    data_dir: Path | str,
    version: str = DEFAULT_KAFKA_VERSION,
    host: str = "127.0.0.1",
    port: int = 9092,
    controller_port: int = 9093,
    node_id: int = NODE_ID,
) -> str:
    """server.properties for a combined broker+controller KRaft node on loopback."""
    hp = format_hostport(host, port)
    cp = format_hostport(host, controller_port)
    lines = [
        "# generated by stack/stack.py -- edits are overwritten on every `up`",
        "process.roles=broker,controller",
        f"node.id={node_id}",
        f"controller.quorum.voters={node_id}@{cp}",
        f"listeners=PLAINTEXT://{hp},CONTROLLER://{cp}",
        f"advertised.listeners=PLAINTEXT://{hp}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={Path(data_dir)}",
        "",
        "# single node: replication factor 1 everywhere",
        "num.partitions=6",
        "default.replication.factor=1",
        "min.insync.replicas=1",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=6",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "transaction.state.log.num.partitions=6",
    ]
    if kafka_major(version) >= 4:
        lines += [
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
        ]
    lines += [
        "",
        "# dev box: fast group joins, topics on demand, small footprint",
        "group.initial.rebalance.delay.ms=0",
        "# a restarted node waits out the old registration's session before it may register again",
        "broker.heartbeat.interval.ms=1000",
        "broker.session.timeout.ms=4000",
        "auto.create.topics.enable=true",
        "delete.topic.enable=true",
        "num.network.threads=2",
        "num.io.threads=4",
        "background.threads=4",
        "num.recovery.threads.per.data.dir=1",
        "log.retention.hours=24",
        "log.segment.bytes=67108864",
        "log.retention.check.interval.ms=300000",
        "log.cleaner.dedupe.buffer.size=16777216",
        "",
    ]
    return "\n".join(lines)


LOG4J2_PROPERTIES = """\
# generated by stack/stack.py: everything to stdout (redirected to .stack/kafka/kafka.log)
status = warn
name = stack
# let Kafka's own shutdown hook log to the end (log4j2's hook would stop logging first)
shutdownHook = disable
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
"""

LOG4J1_PROPERTIES = """\
# generated by stack/stack.py: everything to stdout (redirected to .stack/kafka/kafka.log)
log4j.rootLogger={level}, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.authorizer.logger=WARN
"""


def write_logging_configs() -> None:
    d = kafka_dir()
    d.mkdir(parents=True, exist_ok=True)
    (d / "log4j2.properties").write_text(LOG4J2_PROPERTIES.format(level="INFO"))
    (d / "tools-log4j2.properties").write_text(LOG4J2_PROPERTIES.format(level="WARN"))
    (d / "log4j.properties").write_text(LOG4J1_PROPERTIES.format(level="INFO"))
    (d / "tools-log4j.properties").write_text(LOG4J1_PROPERTIES.format(level="WARN"))


def java_logging_flags(version: str, tools: bool = False) -> list[str]:
    prefix = "tools-" if tools else ""
    if kafka_major(version) >= 4:
        return [f"-Dlog4j2.configurationFile={kafka_dir() / (prefix + 'log4j2.properties')}"]
    return [f"-Dlog4j.configuration=file:{kafka_dir() / (prefix + 'log4j.properties')}"]


# --------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------


def read_pid(service: str) -> int | None:
    try:
        text = pid_file(service).read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    # reap our own child if it exited (when started from this very process)
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return _proc_state(pid) not in (None, "Z", "X")


def pid_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


CMDLINE_MARKERS = {"kafka": "kafka.Kafka", "redis": "redis-server"}


def our_pid(service: str) -> int | None:
    """Recorded pid when that process is alive and still looks like what we started; else
    remove the stale pid file and return None."""
    pid = read_pid(service)
    if pid is None:
        if pid_file(service).exists():
            pid_file(service).unlink(missing_ok=True)
        return None
    marker = CMDLINE_MARKERS[service]
    if pid_alive(pid) and any(marker in a for a in pid_cmdline(pid)):
        return pid
    log(f"removing stale {pid_file(service).name} (pid {pid} is gone)")
    pid_file(service).unlink(missing_ok=True)
    addr_file(service).unlink(missing_ok=True)
    return None


def recorded_addr(service: str) -> str | None:
    try:
        return addr_file(service).read_text().strip() or None
    except OSError:
        return None


def our_pid_at(service: str, addr: str) -> tuple[int | None, str | None]:
    """(pid, None) when our live process serves ``addr``; (None, other_addr) when ours serves
    another address; (None, None) when we run nothing."""
    pid = our_pid(service)
    if pid is None:
        return None, None
    rec = recorded_addr(service)
    if rec is None or rec == addr:
        return pid, None
    return None, rec


def record_started(service: str, pid: int, addr: str) -> None:
    pid_file(service).write_text(f"{pid}\n")
    addr_file(service).write_text(addr + "\n")


def spawn(cmd: list[str], log_path: Path, cwd: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if log_path.exists() and log_path.stat().st_size > 0:
        os.replace(log_path, log_path.with_name(log_path.name + ".1"))
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            cmd,
            cwd=str(cwd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(lines[-n:])


def stop_pid(service: str, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM the recorded pid, wait, then SIGKILL. Returns True when something was stopped."""
    pid = our_pid(service)
    if pid is None:
        pid_file(service).unlink(missing_ok=True)
        addr_file(service).unlink(missing_ok=True)
        return False
    log(f"stopping {service} (pid {pid})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.2)
    if pid_alive(pid):
        log(f"{service} (pid {pid}) ignored SIGTERM for {timeout:.0f}s, sending SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.1)
    pid_file(service).unlink(missing_ok=True)
    addr_file(service).unlink(missing_ok=True)
    return True


# --------------------------------------------------------------------------------------------
# Redis service
# --------------------------------------------------------------------------------------------


def redis_address() -> tuple[str, int]:
    host = os.environ.get("REDIS_HOST") or "127.0.0.1"
    port_s = os.environ.get("REDIS_PORT") or "6379"
    if not port_s.isdigit():
        raise StackError(f"REDIS_PORT={port_s!r} is not a port number")
    return host, int(port_s)


def install_redis() -> str:
    if os.geteuid() != 0:
        raise StackError("redis-server is missing and we are not root: run `sudo apt-get install -y redis-server`")
    if not shutil.which("apt-get"):
        raise StackError("redis-server is missing and apt-get is not available: install Redis by hand")
    log("redis-server missing: installing it with apt-get (one time)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    logf = state_dir() / "apt.log"
    logf.parent.mkdir(parents=True, exist_ok=True)
    with open(logf, "ab") as out:
        for cmd in (
            ["apt-get", *lock, "update"],
            ["apt-get", *lock, "install", "-y", "--no-install-recommends", "redis-server"],
        ):
            rc = subprocess.call(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if rc != 0:
                raise StackError(f"`{' '.join(cmd)}` failed with exit code {rc} (see {logf})")
    path = find_redis_server()
    if not path:
        raise StackError("apt-get installed redis-server but the binary is not on PATH")
    return path


def find_redis_server() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.access(p, os.X_OK)), None
    )


def redis_up() -> dict[str, Any]:
    host, port = redis_address()
    addr = format_hostport(host, port)
    pid, elsewhere = our_pid_at("redis", addr)
    if redis_ping(host, port):
        info = {"service": "redis", "host": host, "port": port, "address": addr, "pid": pid, "started": False}
        log(f"redis already up at {addr} ({f'ours, pid {pid}' if pid else 'external'}), reusing it")
        return info
    if pid is not None:
        # ours but not answering yet: give it a moment, else restart it
        if _wait(lambda: redis_ping(host, port), 5.0, pid):
            return {"service": "redis", "host": host, "port": port, "address": addr, "pid": pid, "started": False}
        log(f"our redis (pid {pid}) does not answer PING, restarting it")
        stop_pid("redis")
    if port_open(host, port):
        raise StackError(f"port {port} on {host} is taken by something that does not answer Redis PING")
    if elsewhere:
        raise StackError(
            f"our redis runs at {elsewhere} (pid {our_pid('redis')}); run `python3 stack/stack.py down` "
            f"before starting one at {addr}"
        )
    if not is_loopback(host):
        raise StackError(f"no Redis answers at {addr} and stack can only start one on loopback")
    binary = find_redis_server() or install_redis()
    d = redis_dir()
    d.mkdir(parents=True, exist_ok=True)
    cmd = [
        binary,
        "--bind", host,
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--dir", str(d),
        "--logfile", "",
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = spawn(cmd, d / "redis.log", d)
    record_started("redis", proc.pid, addr)
    if not _wait(lambda: redis_ping(host, port), REDIS_START_TIMEOUT, proc.pid):
        why = "exited" if not pid_alive(proc.pid) else f"did not answer PING within {REDIS_START_TIMEOUT:.0f}s"
        print(tail(d / "redis.log"), file=sys.stderr)
        stop_pid("redis", timeout=3)
        raise StackError(f"redis-server on {addr} {why} (log: {d / 'redis.log'})")
    log(f"redis {redis_version(host, port)} started at {addr} (pid {proc.pid}, {time.monotonic() - t0:.1f}s)")
    return {"service": "redis", "host": host, "port": port, "address": addr, "pid": proc.pid, "started": True}


def _wait(check, timeout: float, pid: int | None = None, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if pid is not None and not pid_alive(pid):
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Kafka service
# --------------------------------------------------------------------------------------------


def kafka_address() -> tuple[str, int]:
    raw = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_KAFKA
    return parse_bootstrap(raw)[0]


def kafka_bootstrap_list() -> list[tuple[str, int]]:
    return parse_bootstrap(os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_KAFKA)


def parse_java_version(text: str) -> int | None:
    """`java -version` output -> major version (1.8 -> 8, 17.0.15 -> 17)."""
    m = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not m:
        return None
    major = int(m.group(1))
    if major == 1 and m.group(2):
        major = int(m.group(2))
    return major


def check_java(version: str) -> str:
    java = shutil.which("java")
    if not java:
        raise ToolMissing("java not found: install a JDK/JRE 17+ (e.g. `apt-get install -y openjdk-17-jre-headless`)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    major = parse_java_version(out)
    need = 17 if kafka_major(version) >= 4 else 11
    if major is not None and major < need:
        raise StackError(f"Kafka {version} needs Java {need}+, found Java {major} ({java})")
    return java


def installed_kafka_version(libs: Path) -> str | None:
    for jar in libs.glob("kafka_2.13-*.jar"):
        m = re.match(r"kafka_2\.13-(.+)\.jar$", jar.name)
        if m and not m.group(1).endswith(("-sources", "-javadoc", "-test")):
            return m.group(1)
    return None


def fetch_kafka(version: str) -> Path:
    libs = kafka_libs(version)
    if installed_kafka_version(libs) == version and (libs / ".complete").exists():
        return libs
    mvn = shutil.which("mvn")
    if not mvn:
        raise ToolMissing("mvn not found: install Maven (e.g. `apt-get install -y maven`) to fetch Kafka's jars")
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={tmp}", f"-Dkafka.version={version}",
    ]  # fmt: skip
    if kafka_major(version) < 4:
        cmd.append("-Dkafka3")
    log(f"fetching Kafka {version} jars with Maven into {libs} (one time)")
    t0 = time.monotonic()
    logf = kafka_home(version) / "mvn.log"
    with open(logf, "wb") as out:
        rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(STACK_DIR))
    if rc != 0 or installed_kafka_version(tmp) != version:
        print(tail(logf, 20), file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
        raise StackError(f"Maven could not fetch Kafka {version} (exit {rc}, log: {logf})")
    shutil.rmtree(libs, ignore_errors=True)
    os.replace(tmp, libs)
    (libs / ".complete").write_text(version + "\n")
    log(f"fetched {len(list(libs.glob('*.jar')))} jars in {time.monotonic() - t0:.0f}s")
    return libs


def resolve_kafka_version(requested: str | None) -> tuple[str, Path]:
    """Explicit version (flag or KAFKA_VERSION): that one. Otherwise the default, falling back
    to 3.9.x when the default cannot be fetched."""
    explicit = requested or os.environ.get("KAFKA_VERSION")
    if explicit:
        return explicit, fetch_kafka(explicit)
    try:
        return DEFAULT_KAFKA_VERSION, fetch_kafka(DEFAULT_KAFKA_VERSION)
    except ToolMissing:
        raise
    except StackError as exc:
        log(f"{exc}; falling back to Kafka {FALLBACK_KAFKA_VERSION}")
        return FALLBACK_KAFKA_VERSION, fetch_kafka(FALLBACK_KAFKA_VERSION)


def java_cmd(version: str, main: str, *args: str, heap: str = "512m", tools: bool = False) -> list[str]:
    java = check_java(version)
    return [
        java, f"-Xmx{heap}", f"-Xms{heap}" if not tools else "-Xms64m",
        "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
        *java_logging_flags(version, tools=tools),
        "-cp", f"{kafka_libs(version)}/*", main, *args,
    ]  # fmt: skip


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
        if _wait(lambda: kafka_answers(host, port, NODE_ID) is not None, KAFKA_START_TIMEOUT, pid, 0.5):
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
    ok = _wait(lambda: kafka_answers(host, port, NODE_ID) is not None, KAFKA_START_TIMEOUT, proc.pid, 0.5)
    if not ok:
        why = "exited" if not pid_alive(proc.pid) else f"did not serve metadata within {KAFKA_START_TIMEOUT:.0f}s"
        print(tail(log_path), file=sys.stderr)
        stop_pid("kafka", timeout=5)
        raise StackError(f"kafka {version} on {addr} {why} (log: {log_path})")
    log(f"kafka {version} started at {addr} (pid {proc.pid}, broker ready in {time.monotonic() - t1:.1f}s, "
        f"total {time.monotonic() - t0:.1f}s)")  # fmt: skip
    return {"service": "kafka", "host": host, "port": port, "address": addr, "pid": proc.pid, "started": True,
            "version": version}  # fmt: skip


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


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
