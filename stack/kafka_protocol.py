"""Kafka wire protocol, just ApiVersions v0 and Metadata v1..v8 (non-flexible versions), and the probes
built on them: is a real broker answering at host:port, and what metadata does it serve."""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from typing import Any

CLIENT_ID = "stream-scorer-stack"

API_METADATA = 3
API_API_VERSIONS = 18


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by peer")
        buf += chunk
    return bytes(buf)


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
