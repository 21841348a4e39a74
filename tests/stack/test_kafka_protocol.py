"""stack/kafka_protocol.py: ApiVersions/Metadata encoding and decoding, probes against a fake broker, and every
Metadata version against the real broker."""

from __future__ import annotations

import socket
import struct

import pytest

from stack.kafka_config import valid_cluster_id
from stack.kafka_protocol import (
    API_API_VERSIONS,
    API_METADATA,
    _kafka_roundtrip,
    _kstr,
    _recv_exact,
    decode_api_versions_response,
    decode_metadata_response,
    encode_api_versions_request,
    encode_metadata_request,
    kafka_answers,
    kafka_api_versions,
    kafka_metadata,
    pick_metadata_version,
)
from tests.stack.fake_servers import FakeServer, free_port


def recv_frame(conn: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", _recv_exact(conn, 4))
    return _recv_exact(conn, size)


def kstr(s: str | None) -> bytes:
    return _kstr(s)


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


def test_encode_api_versions_request_bytes():
    req = encode_api_versions_request(7, "c")
    assert req == struct.pack(">i", 11) + struct.pack(">hhih", 18, 0, 7, 1) + b"c"


def test_encode_metadata_request_bytes():
    # v1, all topics (null array)
    req = encode_metadata_request(1, None, correlation_id=5, client_id="x")
    body = struct.pack(">hhih", 3, 1, 5, 1) + b"x" + struct.pack(">i", -1)
    assert req == struct.pack(">i", len(body)) + body
    # v1, two topics
    req = encode_metadata_request(1, ["ab", "c"], correlation_id=1, client_id=None)
    body = struct.pack(">hhih", 3, 1, 1, -1) + struct.pack(">i", 2) + kstr("ab") + kstr("c")
    assert req == struct.pack(">i", len(body)) + body
    # v4 adds allow_auto_topic_creation, v8 the two authorized-operations flags
    v4 = encode_metadata_request(4, [], client_id=None)
    assert v4.endswith(struct.pack(">i", 0) + b"\x00")
    v8 = encode_metadata_request(8, [], client_id=None)
    assert v8.endswith(struct.pack(">i", 0) + b"\x00\x00\x00")
    with pytest.raises(ValueError):
        encode_metadata_request(9)


def test_decode_api_versions_response():
    payload = struct.pack(">ihi", 3, 0, 2) + struct.pack(">hhh", 3, 0, 13) + struct.pack(">hhh", 18, 0, 4)
    assert decode_api_versions_response(payload, 3) == {3: (0, 13), 18: (0, 4)}
    with pytest.raises(ValueError):
        decode_api_versions_response(payload, 4)
    with pytest.raises(ValueError):
        decode_api_versions_response(struct.pack(">ihi", 3, 35, 0))


def test_decode_metadata_v1_response():
    payload = metadata_v1_body(
        9,
        brokers=[(1, "127.0.0.1", 9092, None), (2, "h2", 9093, "r1")],
        controller=1,
        topics=[(0, "t", False, [(0, 0, 1, [1], [1]), (0, 1, 2, [2, 1], [2])])],
    )
    meta = decode_metadata_response(payload, 1, 9)
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
        decode_metadata_response(payload[:-3], 1)


def test_decode_metadata_v2_has_cluster_id():
    payload = (
        struct.pack(">i", 1)
        + struct.pack(">i", 1)
        + struct.pack(">i", 1) + kstr("127.0.0.1") + struct.pack(">i", 9092) + kstr(None)
        + kstr("MNgCAj6_SsOm7GZVGx7EeQ")
        + struct.pack(">i", 1)
        + struct.pack(">i", 0)
    )  # fmt: skip
    meta = decode_metadata_response(payload, 2, 1)
    assert meta["cluster_id"] == "MNgCAj6_SsOm7GZVGx7EeQ"
    assert meta["controller_id"] == 1


def test_pick_metadata_version():
    assert pick_metadata_version({3: (0, 13)}) == 2
    assert pick_metadata_version({3: (1, 1)}) == 1
    assert pick_metadata_version({3: (4, 13)}) == 4
    with pytest.raises(ValueError):
        pick_metadata_version({3: (9, 13)})
    with pytest.raises(ValueError):
        pick_metadata_version({18: (0, 4)})


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
        meta = kafka_metadata("127.0.0.1", srv.port)
        assert meta["version"] == 1
        assert meta["brokers"][0]["node_id"] == 1
        assert meta["api_versions"][3] == (0, 1)
        assert kafka_answers("127.0.0.1", srv.port, node_id=1)
        assert kafka_answers("127.0.0.1", srv.port, node_id=7) is None


def test_kafka_answers_none_for_non_kafka():
    with FakeServer(lambda conn: conn.sendall(b"+PONG\r\n")) as srv:
        assert kafka_answers("127.0.0.1", srv.port, timeout=1) is None
    assert kafka_answers("127.0.0.1", free_port(), timeout=1) is None


@pytest.mark.integration
def test_real_kafka_metadata_every_version(real_kafka):
    host, port = real_kafka
    apis = kafka_api_versions(host, port)
    assert API_METADATA in apis and API_API_VERSIONS in apis
    lo, hi = apis[API_METADATA]
    tested = 0
    for version in range(max(lo, 1), min(hi, 8) + 1):
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.settimeout(5)
            req = encode_metadata_request(version, None, correlation_id=100 + version)
            meta = decode_metadata_response(_kafka_roundtrip(sock, req), version, 100 + version)
        assert meta["brokers"], version
        assert all(b["port"] > 0 and b["host"] for b in meta["brokers"])
        assert meta["controller_id"] >= 0 or version < 1
        for t in meta["topics"]:
            assert t["name"]
            for p in t["partitions"]:
                assert p["leader"] in {b["node_id"] for b in meta["brokers"]} or p["leader"] == -1
        tested += 1
    assert tested >= 1
    meta = kafka_metadata(host, port)
    if meta["version"] >= 2:
        assert valid_cluster_id(meta["cluster_id"])
