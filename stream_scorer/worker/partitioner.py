"""Kafka's default partitioner for a whole batch of keys: the partition the Java client (and aiokafka) picks.

aiokafka hashes each key with a pure-Python murmur2 (~5 us per key); the worker produces one decision per event,
keyed by card or user, so here the hash runs with numpy over the keys of a batch, grouped by length. Decisions
land exactly where ``producer.send(topic, value, key=key)`` would put them (tested against aiokafka's murmur2).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
from aiokafka.partitioner import murmur2

_SEED = 0x9747B28C
_M = np.uint32(0x5BD1E995)
_VECTOR_FROM = 8
"""Fewer keys than this are hashed one by one: numpy's per-call cost outweighs a few keys."""


def murmur2_many(keys: Sequence[bytes]) -> list[int]:
    """``aiokafka.partitioner.murmur2`` of every key."""
    if len(keys) < _VECTOR_FROM:
        return [murmur2(key) for key in keys]
    out = [0] * len(keys)
    rows_by_length: dict[int, list[int]] = {}
    for row, key in enumerate(keys):
        rows_by_length.setdefault(len(key), []).append(row)
    for length, rows in rows_by_length.items():
        hashes = _murmur2_same_length([keys[r] for r in rows], length)
        for row, value in zip(rows, hashes.tolist(), strict=True):
            out[row] = value
    return out


def _murmur2_same_length(keys: Sequence[bytes], length: int) -> np.ndarray:
    data = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), length)
    h = np.full(len(keys), (_SEED ^ length) & 0xFFFFFFFF, dtype=np.uint32)
    words = length // 4
    if words:
        blocks = np.ascontiguousarray(data[:, :words * 4]).view("<u4")
        for i in range(words):  # uint32 arithmetic wraps like the Java client's int
            k = blocks[:, i] * _M
            k ^= k >> np.uint32(24)
            k *= _M
            h *= _M
            h ^= k
    tail, extra = words * 4, length % 4
    if extra >= 3:
        h ^= data[:, tail + 2].astype(np.uint32) << np.uint32(16)
    if extra >= 2:
        h ^= data[:, tail + 1].astype(np.uint32) << np.uint32(8)
    if extra >= 1:
        h ^= data[:, tail].astype(np.uint32)
        h *= _M
    h ^= h >> np.uint32(13)
    h *= _M
    h ^= h >> np.uint32(15)
    return h


def partitions_for(keys: Sequence[bytes | None], partitions: Sequence[int]) -> list[int]:
    """The default partitioner's choice for each key: ``murmur2(key) & 0x7fffffff`` modulo the partition count
    (over the partition ids in order); a key-less record goes to a random partition, as aiokafka sends it."""
    ordered = sorted(partitions)
    keyed = [k for k in keys if k is not None]
    hashes = iter(murmur2_many(keyed))
    n = len(ordered)
    return [ordered[(next(hashes) & 0x7FFFFFFF) % n] if key is not None else random.choice(ordered) for key in keys]
