"""The batch partitioner picks the partition aiokafka's (and the Java client's) default partitioner picks."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner, murmur2

from stream_scorer.worker.partitioner import murmur2_many, partitions_for


def test_murmur2_of_a_batch_equals_aiokafkas_for_every_length() -> None:
    rng = random.Random(7)
    keys = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 41))) for _ in range(3000)]
    assert murmur2_many(keys) == [murmur2(k) for k in keys]
    assert murmur2_many(keys[:3]) == [murmur2(k) for k in keys[:3]]  # the one-by-one path of small batches


def test_keyed_records_go_where_send_would_put_them() -> None:
    rng = random.Random(8)
    keys: list[bytes | None] = [f"card_{rng.randrange(10**8):08d}".encode() for _ in range(500)]
    for partitions in ([0], [0, 1, 2, 3, 4, 5], [5, 3, 1, 0, 2, 4, 6, 7, 8, 9, 10, 11]):
        ordered = sorted(partitions)
        expected = [DefaultPartitioner()(k, ordered, None) for k in keys]
        assert partitions_for(keys, partitions) == expected


def test_records_without_a_key_go_to_some_partition_and_keyed_ones_keep_their_own() -> None:
    keys: list[bytes | None] = [b"user-1", None, b"user-2", None] * 5
    chosen = partitions_for(keys, [0, 1, 2])
    assert all(p in (0, 1, 2) for p in chosen)
    assert [p for k, p in zip(keys, chosen, strict=True) if k is not None] == \
        [DefaultPartitioner()(k, [0, 1, 2], None) for k in keys if k is not None]
