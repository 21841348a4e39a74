"""stack/kafka_config.py: server.properties of the combined KRaft node, cluster ids, version parsing."""

from __future__ import annotations

import base64

import pytest

from stack.errors import StackError
from stack.kafka_config import kafka_major, new_cluster_id, render_server_properties, valid_cluster_id


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
    props = parse_props(render_server_properties(tmp_path / "data", "4.0.2"))
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
    props = parse_props(render_server_properties(tmp_path, "3.9.1", port=19092, controller_port=19093))
    assert not any(k.startswith("share.") for k in props)
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"


def test_cluster_id_format():
    seen = set()
    for _ in range(200):
        cid = new_cluster_id()
        assert len(cid) == 22
        assert not cid.startswith("-")
        assert set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16
        assert valid_cluster_id(cid)
        seen.add(cid)
    assert len(seen) == 200


@pytest.mark.parametrize(
    "bad", ["", "short", "A" * 23, "AAAAAAAAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAAAAAA", "abc+defghijklmnopqrstu"]
)
def test_invalid_cluster_ids(bad):
    assert not valid_cluster_id(bad)  # AAAA...A is the all-zero uuid


def test_kafka_major():
    assert kafka_major("4.0.2") == 4
    assert kafka_major("3.9.1") == 3
    with pytest.raises(StackError):
        kafka_major("latest")
