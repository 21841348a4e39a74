"""Request ids, request metrics and JSON access logs, as one plain ASGI middleware (cheap on the hot path)."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from http_api.errors import CLIENT_CLOSED_REQUEST
from http_api.rate_limit import RateLimiter
from stream_scorer.core.identified import new_event_id
from stream_scorer.logging import request_id_var
from stream_scorer.metrics import Metrics

access_log = logging.getLogger("http_api.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_UNMETERED = {"/metrics", "/health", "/ready"}


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, limiter: RateLimiter | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or new_event_id()  # 128 random bits, like uuid4 (drawn in bulk)
        token = request_id_var.set(request_id)
        path: str = scope["path"]
        start = time.perf_counter()
        status = 500
        responded = disconnected = False
        metered = path not in _UNMETERED
        if metered:
            self.metrics.active_requests.inc()

        async def receive_watching() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            wait = self.limiter.acquire(_client_key(scope)) if self.limiter and path.startswith("/score/") else 0.0
            if wait > 0:
                await _too_many(send_with_id, wait)
            else:
                await self.app(scope, receive_watching, send_with_id)
        except BaseException as exc:
            if not isinstance(exc, ClientDisconnect | asyncio.CancelledError):
                disconnected = False  # a failure after the client left is still a server error
            raise
        finally:
            elapsed = time.perf_counter() - start
            if not responded and disconnected:
                status = CLIENT_CLOSED_REQUEST  # the client left before an answer: not a server error
            if metered:
                self.metrics.active_requests.dec()
                endpoint = _endpoint(scope)
                self.metrics.child(self.metrics.requests, endpoint, str(status)).inc()
                self.metrics.child(self.metrics.request_duration, endpoint).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info("request", extra={"method": scope["method"], "path": path, "status": status,
                                                  "duration_ms": round(elapsed * 1000, 3),
                                                  "client": _client(scope)})
            request_id_var.reset(token)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _VALID_ID.match(candidate) else None
    return None


def _client_key(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            return "key:" + value.decode("latin-1")
    return "addr:" + (_client(scope) or "unknown")


async def _too_many(send: Send, wait: float) -> None:
    retry_after = str(max(1, math.ceil(wait)))
    body = orjson.dumps({"error": "rate_limited", "message": f"too many requests, retry after {retry_after} s"})
    await send({"type": "http.response.start", "status": 429, "headers": [
        (b"content-type", b"application/json"), (b"retry-after", retry_after.encode()),
        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _endpoint(scope: Scope) -> str:
    route: Any = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None
