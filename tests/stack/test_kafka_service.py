"""stack/kafka_service.py: the refusals that come before fetching or starting anything."""

from __future__ import annotations

import pytest

from stack.errors import StackError
from stack.kafka_service import kafka_up
from tests.stack.fake_servers import FakeServer


def test_kafka_up_refuses_port_taken_by_non_kafka(state, monkeypatch):
    with FakeServer(lambda conn: None) as srv:
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{srv.port}")
        with pytest.raises(StackError, match=f"port {srv.port}"):
            kafka_up()
