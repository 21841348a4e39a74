"""stack/addresses.py: host:port parsing and formatting, loopback check, port probe."""

from __future__ import annotations

import pytest

from stack.addresses import format_hostport, is_loopback, parse_bootstrap, parse_hostport, port_open
from stack.errors import StackError
from tests.stack.fake_servers import FakeServer, free_port


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
    assert parse_hostport(text, 9092) == expected


@pytest.mark.parametrize("bad", ["", "host:port", "h:0", "h:70000", "[::1", "[::1]x"])
def test_parse_hostport_rejects(bad):
    with pytest.raises(StackError):
        parse_hostport(bad, 9092)


def test_parse_bootstrap_list():
    assert parse_bootstrap("a:1, b ,c:3") == [("a", 1), ("b", 9092), ("c", 3)]
    assert format_hostport("::1", 9092) == "[::1]:9092"
    assert format_hostport("127.0.0.1", 9092) == "127.0.0.1:9092"


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("127.1.2.3") and is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("kafka")


def test_port_open():
    with FakeServer(lambda conn: None) as srv:
        assert port_open("127.0.0.1", srv.port)
    assert not port_open("127.0.0.1", free_port(), timeout=0.5)
