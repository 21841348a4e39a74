"""Finding the real Kafka broker and Redis server for integration tests.

Order: the services named by ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_HOST`` when they answer; testcontainers
when a Docker daemon answers; the project's local stack (``stack/stack.py``, started on demand) otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from stack import stack


@dataclass(frozen=True)
class ServiceAddresses:
    kafka_bootstrap: str
    redis_host: str
    redis_port: int
    source: str


def _env_services() -> ServiceAddresses | None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    redis_host = os.environ.get("REDIS_HOST")
    if not bootstrap or not redis_host:
        return None
    redis_port = int(os.environ.get("REDIS_PORT", "6379"))
    kafka_ok = any(stack.kafka_answers(h, p) for h, p in stack.parse_bootstrap(bootstrap))
    redis_ok = False
    with contextlib.suppress(Exception):
        redis_ok = stack.redis_ping(redis_host, redis_port)
    return ServiceAddresses(bootstrap, redis_host, redis_port, "environment") if kafka_ok and redis_ok else None


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def _containers() -> Iterator[ServiceAddresses]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.redis import RedisContainer

    with KafkaContainer().with_kraft() as kafka, RedisContainer() as redis:
        yield ServiceAddresses(kafka.get_bootstrap_server(), redis.get_container_host_ip(),
                               int(redis.get_exposed_port(6379)), "testcontainers")


@contextlib.contextmanager
def real_services() -> Iterator[ServiceAddresses]:
    found = _env_services()
    if found is not None:
        yield found
        return
    if _docker_answers():
        with _containers() as services:
            yield services
        return
    env = stack.ensure_up()
    yield ServiceAddresses(env["KAFKA_BOOTSTRAP_SERVERS"], env["REDIS_HOST"], int(env["REDIS_PORT"]), "local stack")
