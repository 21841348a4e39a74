"""Addresses: ``host:port`` parsing and formatting, loopback check, TCP port probe."""

from __future__ import annotations

import ipaddress
import socket

from stack.errors import StackError

DEFAULT_REDIS = "127.0.0.1:6379"
DEFAULT_KAFKA = "127.0.0.1:9092"


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
