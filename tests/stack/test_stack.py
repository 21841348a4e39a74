"""Unit tests for stack/stack.py's pure helpers, plus wire-protocol checks against a real
Kafka / Redis when one answers (skipped otherwise). Starts nothing heavy itself."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stack import stack as st  # noqa: E402

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeServer:
    """One-thread TCP server on loopback; ``handler(conn)`` serves each connection."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                self.handler(conn)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def recv_frame(conn: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", st._recv_exact(conn, 4))
    return st._recv_exact(conn, size)


def kstr(s: str | None) -> bytes:
    return st._kstr(s)


def metadata_v1_body(corr: int, brokers, controller: int, topics) -> bytes:
    out = struct.pack(">i", corr) + struct.pack(">i", len(brokers))
    for node, host, port, rack in brokers:
        out += struct.pack(">i", node) + kstr(host) + struct.pack(">i", port) + kstr(rack)
    out += struct.pack(">i", controller) + struct.pack(">i", len(topics))
    for err, name, internal, parts in topics:
        out += struct.pack(">h", err) + kstr(name) + struct.pack(">?", internal) + struct.pack(">i", len(parts))
        for perr, pid, leader, replicas, isr in parts:
            out += struct.pack(">hii", perr, pid, leader)
            out += struct.pack(">i", len(replicas)) + b"".join(struct.pack(">i", r) for r in replicas)
            out += struct.pack(">i", len(isr)) + b"".join(struct.pack(">i", r) for r in isr)
    return out


def real_kafka() -> tuple[str, int] | None:
    host, port = st.parse_bootstrap(os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or st.DEFAULT_KAFKA)[0]
    return (host, port) if st.kafka_answers(host, port) else None


def real_redis() -> tuple[str, int] | None:
    host = os.environ.get("REDIS_HOST") or "127.0.0.1"
    port = int(os.environ.get("REDIS_PORT") or 6379)
    try:
        return (host, port) if st.redis_ping(host, port) else None
    except st.StackError:
        return None


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("STACK_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    return tmp_path / "state"


# --------------------------------------------------------------------------------------------
# server.properties / cluster id
# --------------------------------------------------------------------------------------------


def parse_props(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            k, v = line.split("=", 1)
            assert k not in out, f"duplicate key {k}"
            out[k] = v
    return out


def test_render_server_properties_kraft_combined_node(tmp_path):
    props = parse_props(st.render_server_properties(tmp_path / "data", "4.0.2"))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert props["log.dirs"] == str(tmp_path / "data")
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["num.partitions"] == "6"
    assert props["auto.create.topics.enable"] == "true"


def test_render_server_properties_3x_has_no_share_coordinator_and_custom_ports(tmp_path):
    props = parse_props(st.render_server_properties(tmp_path, "3.9.1", port=19092, controller_port=19093))
    assert not any(k.startswith("share.") for k in props)
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"


def test_cluster_id_format():
    seen = set()
    for _ in range(200):
        cid = st.new_cluster_id()
        assert len(cid) == 22
        assert not cid.startswith("-")
        assert set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16
        assert st.valid_cluster_id(cid)
        seen.add(cid)
    assert len(seen) == 200


@pytest.mark.parametrize(
    "bad", ["", "short", "A" * 23, "AAAAAAAAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAAAAAA", "abc+defghijklmnopqrstu"]
)
def test_invalid_cluster_ids(bad):
    assert not st.valid_cluster_id(bad)  # AAAA...A is the all-zero uuid


def test_kafka_major():
    assert st.kafka_major("4.0.2") == 4
    assert st.kafka_major("3.9.1") == 3
    with pytest.raises(st.StackError):
        st.kafka_major("latest")


# --------------------------------------------------------------------------------------------
# address parsing / port probing
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        ("127.0.0.1:9092", ("127.0.0.1", 9092)),
        ("localhost", ("localhost", 9092)),
        (" kafka:29092 ", ("kafka", 29092)),
        ("PLAINTEXT://127.0.0.1:9094", ("127.0.0.1", 9094)),
        ("[::1]:9093", ("::1", 9093)),
        ("[::1]", ("::1", 9092)),
        ("::1", ("::1", 9092)),
    ],
)
def test_parse_hostport(text, expected):
    assert st.parse_hostport(text, 9092) == expected


@pytest.mark.parametrize("bad", ["", "host:port", "h:0", "h:70000", "[::1", "[::1]x"])
def test_parse_hostport_rejects(bad):
    with pytest.raises(st.StackError):
        st.parse_hostport(bad, 9092)


def test_parse_bootstrap_list():
    assert st.parse_bootstrap("a:1, b ,c:3") == [("a", 1), ("b", 9092), ("c", 3)]
    assert st.format_hostport("::1", 9092) == "[::1]:9092"
    assert st.format_hostport("127.0.0.1", 9092) == "127.0.0.1:9092"


def test_is_loopback():
    assert st.is_loopback("127.0.0.1") and st.is_loopback("127.1.2.3") and st.is_loopback("::1")
    assert st.is_loopback("localhost")
    assert not st.is_loopback("10.0.0.1") and not st.is_loopback("kafka")


def test_port_open():
    with FakeServer(lambda conn: None) as srv:
        assert st.port_open("127.0.0.1", srv.port)
    assert not st.port_open("127.0.0.1", free_port(), timeout=0.5)


@pytest.mark.parametrize(
    "text,major",
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("garbage", None),
    ],
)
def test_parse_java_version(text, major):
    assert st.parse_java_version(text) == major


# --------------------------------------------------------------------------------------------
# RESP / Redis
# --------------------------------------------------------------------------------------------


def test_resp_encode():
    assert st.resp_encode("PING") == b"*1\r\n$4\r\nPING\r\n"
    assert st.resp_encode("INFO", "server") == b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"


def test_resp_read_kinds():
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"+PONG\r\n:42\r\n$5\r\nhel\r\n\r\n$-1\r\n*2\r\n+a\r\n:1\r\n-ERR nope\r\n")
        r = st._Reader(a)
        assert st.resp_read(r) == "PONG"
        assert st.resp_read(r) == 42
        assert st.resp_read(r) == b"hel\r\n"
        assert st.resp_read(r) is None
        assert st.resp_read(r) == ["a", 1]
        err = st.resp_read(r)
        assert isinstance(err, st.RedisReplyError) and "nope" in str(err)


def test_parse_redis_info():
    info = st.parse_redis_info(
        b"# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n\r\n# Clients\r\nx:a:b\r\n"
    )
    assert info["redis_version"] == "7.0.15"
    assert info["redis_mode"] == "standalone"
    assert info["x"] == "a:b"


def _fake_redis(conn):
    r = st._Reader(conn)
    while True:
        cmd = st.resp_read(r)
        if cmd == [b"PING"]:
            conn.sendall(b"+PONG\r\n")
        elif cmd and cmd[0] == b"INFO":
            body = b"# Server\r\nredis_version:9.9.9\r\n"
            conn.sendall(b"$%d\r\n%s\r\n" % (len(body), body))
        else:
            conn.sendall(b"-ERR unknown\r\n")


def test_redis_ping_and_version_against_fake_server():
    with FakeServer(_fake_redis) as srv:
        assert st.redis_ping("127.0.0.1", srv.port)
        assert st.redis_version("127.0.0.1", srv.port) == "9.9.9"


def test_redis_ping_false_for_non_redis_and_closed_port():
    with FakeServer(lambda conn: conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")) as srv:
        assert not st.redis_ping("127.0.0.1", srv.port)
    with FakeServer(lambda conn: None) as srv:  # accepts then closes
        assert not st.redis_ping("127.0.0.1", srv.port)
    assert not st.redis_ping("127.0.0.1", free_port())


def test_redis_ping_noauth_is_a_clear_error():
    def noauth(conn):
        conn.recv(100)
        conn.sendall(b"-NOAUTH Authentication required.\r\n")

    with FakeServer(noauth) as srv, pytest.raises(st.StackError, match="password"):
        st.redis_ping("127.0.0.1", srv.port)


def test_install_redis_needs_root(monkeypatch):
    monkeypatch.setattr(st.os, "geteuid", lambda: 1000)
    with pytest.raises(st.StackError, match="not root"):
        st.install_redis()


def test_missing_mvn_is_a_clear_error_without_fallback(state, monkeypatch):
    monkeypatch.setattr(st.shutil, "which", lambda name: None)
    with pytest.raises(st.ToolMissing, match="mvn not found"):
        st.resolve_kafka_version(None)
    with pytest.raises(st.ToolMissing, match="java not found"):
        st.check_java("4.0.2")


def test_redis_up_refuses_port_taken_by_non_redis(state, monkeypatch):
    with FakeServer(lambda conn: None) as srv:
        monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
        monkeypatch.setenv("REDIS_PORT", str(srv.port))
        with pytest.raises(st.StackError, match=f"port {srv.port}"):
            st.redis_up()


# --------------------------------------------------------------------------------------------
# Kafka wire protocol
# --------------------------------------------------------------------------------------------


def test_encode_api_versions_request_bytes():
    req = st.encode_api_versions_request(7, "c")
    assert req == struct.pack(">i", 11) + struct.pack(">hhih", 18, 0, 7, 1) + b"c"


def test_encode_metadata_request_bytes():
    # v1, all topics (null array)
    req = st.encode_metadata_request(1, None, correlation_id=5, client_id="x")
    body = struct.pack(">hhih", 3, 1, 5, 1) + b"x" + struct.pack(">i", -1)
    assert req == struct.pack(">i", len(body)) + body
    # v1, two topics
    req = st.encode_metadata_request(1, ["ab", "c"], correlation_id=1, client_id=None)
    body = struct.pack(">hhih", 3, 1, 1, -1) + struct.pack(">i", 2) + kstr("ab") + kstr("c")
    assert req == struct.pack(">i", len(body)) + body
    # v4 adds allow_auto_topic_creation, v8 the two authorized-operations flags
    v4 = st.encode_metadata_request(4, [], client_id=None)
    assert v4.endswith(struct.pack(">i", 0) + b"\x00")
    v8 = st.encode_metadata_request(8, [], client_id=None)
    assert v8.endswith(struct.pack(">i", 0) + b"\x00\x00\x00")
    with pytest.raises(ValueError):
        st.encode_metadata_request(9)


def test_decode_api_versions_response():
    payload = struct.pack(">ihi", 3, 0, 2) + struct.pack(">hhh", 3, 0, 13) + struct.pack(">hhh", 18, 0, 4)
    assert st.decode_api_versions_response(payload, 3) == {3: (0, 13), 18: (0, 4)}
    with pytest.raises(ValueError):
        st.decode_api_versions_response(payload, 4)
    with pytest.raises(ValueError):
        st.decode_api_versions_response(struct.pack(">ihi", 3, 35, 0))


def test_decode_metadata_v1_response():
    payload = metadata_v1_body(
        9,
        brokers=[(1, "127.0.0.1", 9092, None), (2, "h2", 9093, "r1")],
        controller=1,
        topics=[(0, "t", False, [(0, 0, 1, [1], [1]), (0, 1, 2, [2, 1], [2])])],
    )
    meta = st.decode_metadata_response(payload, 1, 9)
    assert meta["brokers"] == [
        {"node_id": 1, "host": "127.0.0.1", "port": 9092, "rack": None},
        {"node_id": 2, "host": "h2", "port": 9093, "rack": "r1"},
    ]
    assert meta["controller_id"] == 1
    assert meta["cluster_id"] is None
    (t,) = meta["topics"]
    assert t["name"] == "t" and not t["is_internal"]
    assert [p["leader"] for p in t["partitions"]] == [1, 2]
    assert t["partitions"][1]["replicas"] == [2, 1]
    with pytest.raises(ValueError):
        st.decode_metadata_response(payload[:-3], 1)


def test_decode_metadata_v2_has_cluster_id():
    payload = (
        struct.pack(">i", 1)
        + struct.pack(">i", 1)
        + struct.pack(">i", 1) + kstr("127.0.0.1") + struct.pack(">i", 9092) + kstr(None)
        + kstr("MNgCAj6_SsOm7GZVGx7EeQ")
        + struct.pack(">i", 1)
        + struct.pack(">i", 0)
    )  # fmt: skip
    meta = st.decode_metadata_response(payload, 2, 1)
    assert meta["cluster_id"] == "MNgCAj6_SsOm7GZVGx7EeQ"
    assert meta["controller_id"] == 1


def test_pick_metadata_version():
    assert st.pick_metadata_version({3: (0, 13)}) == 2
    assert st.pick_metadata_version({3: (1, 1)}) == 1
    assert st.pick_metadata_version({3: (4, 13)}) == 4
    with pytest.raises(ValueError):
        st.pick_metadata_version({3: (9, 13)})
    with pytest.raises(ValueError):
        st.pick_metadata_version({18: (0, 4)})


def _fake_kafka(conn):
    while True:
        req = recv_frame(conn)
        api_key, api_version, corr = struct.unpack_from(">hhi", req)
        if api_key == 18:
            body = struct.pack(">ihi", corr, 0, 2) + struct.pack(">hhh", 3, 0, 1) + struct.pack(">hhh", 18, 0, 3)
        elif api_key == 3:
            assert api_version == 1
            body = metadata_v1_body(corr, [(1, "127.0.0.1", 1234, None)], 1, [])
        else:
            return
        conn.sendall(struct.pack(">i", len(body)) + body)


def test_kafka_metadata_against_fake_broker():
    with FakeServer(_fake_kafka) as srv:
        meta = st.kafka_metadata("127.0.0.1", srv.port)
        assert meta["version"] == 1
        assert meta["brokers"][0]["node_id"] == 1
        assert meta["api_versions"][3] == (0, 1)
        assert st.kafka_answers("127.0.0.1", srv.port, node_id=1)
        assert st.kafka_answers("127.0.0.1", srv.port, node_id=7) is None


def test_kafka_answers_none_for_non_kafka():
    with FakeServer(lambda conn: conn.sendall(b"+PONG\r\n")) as srv:
        assert st.kafka_answers("127.0.0.1", srv.port, timeout=1) is None
    assert st.kafka_answers("127.0.0.1", free_port(), timeout=1) is None


def test_kafka_up_refuses_port_taken_by_non_kafka(state, monkeypatch):
    with FakeServer(lambda conn: None) as srv:
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{srv.port}")
        with pytest.raises(st.StackError, match=f"port {srv.port}"):
            st.kafka_up()


# --------------------------------------------------------------------------------------------
# pid files / process handling (no Kafka or Redis involved)
# --------------------------------------------------------------------------------------------


def test_stale_pid_file_is_removed(state):
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    st.pid_file("kafka").write_text(f"{p.pid}\n")
    assert st.our_pid("kafka") is None
    assert not st.pid_file("kafka").exists()
    # alive but not what we started (this test process): also stale
    st.pid_file("redis").write_text(f"{os.getpid()}\n")
    assert st.our_pid("redis") is None
    assert not st.pid_file("redis").exists()
    st.pid_file("redis").write_text("garbage\n")
    assert st.our_pid("redis") is None


def test_stop_pid_terminates_recorded_process(state):
    # a stand-in whose command line carries the marker stack checks before signalling
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "redis-server"], start_new_session=True
    )
    try:
        st.pid_file("redis").write_text(f"{proc.pid}\n")
        assert st.our_pid("redis") == proc.pid
        assert st.stop_pid("redis", timeout=5)
        assert proc.wait(timeout=5) is not None
        assert not st.pid_file("redis").exists()
        assert not st.stop_pid("redis")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_ownership_is_tied_to_the_address(state, monkeypatch):
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "redis-server"], start_new_session=True
    )
    try:
        st.record_started("redis", proc.pid, "127.0.0.1:6379")
        assert st.our_pid_at("redis", "127.0.0.1:6379") == (proc.pid, None)
        assert st.our_pid_at("redis", "127.0.0.1:7000") == (None, "127.0.0.1:6379")
        # nothing answers on the requested port and ours serves another one: refuse, don't restart ours
        port = free_port()
        monkeypatch.setenv("REDIS_PORT", str(port))
        with pytest.raises(st.StackError, match=r"our redis runs at 127\.0\.0\.1:6379"):
            st.redis_up()
        assert proc.poll() is None
        assert st.status()["redis"]["pid"] is None
    finally:
        proc.kill()
        proc.wait()
    assert st.our_pid_at("redis", "127.0.0.1:6379") == (None, None)
    assert not st.addr_file("redis").exists()


def test_status_exit_code_when_nothing_runs(state, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_PORT", str(free_port()))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    assert st.main(["status"]) == 1
    out = capsys.readouterr().out
    assert "redis" in out and "kafka" in out and "down" in out
    assert st.main(["env"]) == 1
    assert "stack:" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# against real services, when they run (python3 stack/stack.py up)
# --------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_real_kafka_metadata_every_version():
    addr = real_kafka()
    if not addr:
        pytest.skip("no Kafka answers at KAFKA_BOOTSTRAP_SERVERS (run python3 stack/stack.py up)")
    host, port = addr
    apis = st.kafka_api_versions(host, port)
    assert st.API_METADATA in apis and st.API_API_VERSIONS in apis
    lo, hi = apis[st.API_METADATA]
    tested = 0
    for version in range(max(lo, 1), min(hi, 8) + 1):
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.settimeout(5)
            req = st.encode_metadata_request(version, None, correlation_id=100 + version)
            meta = st.decode_metadata_response(st._kafka_roundtrip(sock, req), version, 100 + version)
        assert meta["brokers"], version
        assert all(b["port"] > 0 and b["host"] for b in meta["brokers"])
        assert meta["controller_id"] >= 0 or version < 1
        for t in meta["topics"]:
            assert t["name"]
            for p in t["partitions"]:
                assert p["leader"] in {b["node_id"] for b in meta["brokers"]} or p["leader"] == -1
        tested += 1
    assert tested >= 1
    meta = st.kafka_metadata(host, port)
    if meta["version"] >= 2:
        assert st.valid_cluster_id(meta["cluster_id"])


@pytest.mark.integration
def test_real_redis_ping_and_info():
    addr = real_redis()
    if not addr:
        pytest.skip("no Redis answers at REDIS_HOST:REDIS_PORT (run python3 stack/stack.py up)")
    assert st.redis_ping(*addr)
    assert st.redis_version(*addr).count(".") >= 1
