"""The request middleware's status accounting, on a bare ASGI app (no scoring needed)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from starlette.types import Message, Receive, Scope, Send

from http_api.errors import CLIENT_CLOSED_REQUEST
from http_api.middleware import RequestContextMiddleware
from stream_scorer.metrics import Metrics


async def _leaves_early(scope: Scope, receive: Receive, send: Send) -> None:
    while (await receive())["type"] != "http.disconnect":  # the app reads until the client is gone, answers nothing
        pass


async def _fails_after_the_client_left(scope: Scope, receive: Receive, send: Send) -> None:
    await _leaves_early(scope, receive, send)
    raise RuntimeError("a bug, not the client's doing")


async def _answers(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _call(app: RequestContextMiddleware, messages: list[Message]) -> list[Message]:
    scope: Scope = {"type": "http", "method": "POST", "path": "/score/fraud", "headers": [], "client": ("1.2.3.4", 1)}
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def _count(registry: CollectorRegistry, status: int) -> float | None:
    return registry.get_sample_value("inference_requests_total", {"endpoint": "unmatched", "status": str(status)})


async def test_a_client_that_disconnects_before_the_answer_is_counted_as_499_not_500() -> None:
    registry = CollectorRegistry()
    app = RequestContextMiddleware(_leaves_early, Metrics(registry))
    sent = await _call(app, [{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}])
    assert sent == []
    assert _count(registry, CLIENT_CLOSED_REQUEST) == 1.0
    assert _count(registry, 500) is None


async def test_an_answered_request_keeps_its_status() -> None:
    registry = CollectorRegistry()
    app = RequestContextMiddleware(_answers, Metrics(registry))
    sent = await _call(app, [{"type": "http.request", "body": b"{}"}])
    assert sent[0]["status"] == 200 and (b"x-request-id" in dict(sent[0]["headers"]))
    assert _count(registry, 200) == 1.0 and _count(registry, CLIENT_CLOSED_REQUEST) is None


async def test_a_failure_after_the_client_left_is_still_a_500() -> None:
    registry = CollectorRegistry()
    app = RequestContextMiddleware(_fails_after_the_client_left, Metrics(registry))
    with pytest.raises(RuntimeError):
        await _call(app, [{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}])
    assert _count(registry, 500) == 1.0 and _count(registry, CLIENT_CLOSED_REQUEST) is None
