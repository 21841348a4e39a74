"""stack/kafka_jars.py: Java version checks and the Maven fetch's failure modes (nothing is downloaded)."""

from __future__ import annotations

import shutil

import pytest

from stack.errors import ToolMissing
from stack.kafka_jars import check_java, parse_java_version, resolve_kafka_version


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
    assert parse_java_version(text) == major


def test_missing_mvn_is_a_clear_error_without_fallback(state, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ToolMissing, match="mvn not found"):
        resolve_kafka_version(None)
    with pytest.raises(ToolMissing, match="java not found"):
        check_java("4.0.2")
