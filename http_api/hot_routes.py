"""``POST /score/fraud`` and ``POST /score/personalization`` as plain ASGI, in front of FastAPI's stack.

A profile under load put FastAPI's and Starlette's layers (error and exception middleware, exit stacks, routing,
dependency solving, the ``Request`` object) at more CPU than the scoring itself. These two routes are the hot
path, so :class:`ScoringApp` hands them to :class:`HotRoutes` with only what they need around it: our
:class:`RequestContextMiddleware` (request id, metrics, access log, rate limit) and CORS when configured. The
behaviour is the routes' own: ``score_event`` is the one implementation, also called by the FastAPI route
functions (which keep the OpenAPI document and serve any other method or mounting).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from http_api.body import check_declared_size, validate_body
from http_api.deps import Coalescers
from http_api.errors import ErrorReply, scoring_error_reply, unexpected_error_reply, validation_error_reply
from schemas.decisions import to_json
from schemas.events import SessionEvent, TransactionEvent
from stream_scorer.core.identified import identify_session_event, identify_transaction, new_event_id
from stream_scorer.core.scorer import Timings
from stream_scorer.errors import ScoringError
from stream_scorer.metrics import Metrics

MAX_EVENT_BYTES = 16 * 1024
Kind = Literal["fraud", "personalization"]
HOT_PATHS: dict[str, Kind] = {"/score/fraud": "fraud", "/score/personalization": "personalization"}


async def score_event(kind: Kind, raw: bytes, coalescers: Coalescers) -> tuple[bytes, Timings]:
    """Validate one event from the body bytes, score it with its coalesced batch, and render the decision."""
    if kind == "fraud":
        tx = validate_body(raw, TransactionEvent, MAX_EVENT_BYTES)
        decision: Any
        decision, timings = await coalescers.fraud.submit(identify_transaction(tx, new_event_id, time.time()))
    else:
        event = validate_body(raw, SessionEvent, MAX_EVENT_BYTES)
        decision, timings = await coalescers.personalization.submit(
            identify_session_event(event, new_event_id, time.time()))
    return to_json(decision), timings


def server_timing(timings: Timings) -> str:
    return ", ".join(f"{stage};dur={ms:.3f}" for stage, ms in timings.items())


@dataclass(frozen=True)
class _Route:
    """What the request metrics read from ``scope["route"]`` (the endpoint label)."""

    path: str


class HotRoutes:
    """The plain-ASGI handler of the hot paths (POST only; :class:`ScoringApp` routes them here)."""

    def __init__(self, app: FastAPI, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics
        self._routes = {path: _Route(path) for path in HOT_PATHS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        scope["route"] = self._routes[path]
        try:
            raw = await _read_body(scope, receive)
            if raw is None:
                return  # the client went away
            body, timings = await score_event(HOT_PATHS[path], raw, self._app.state.coalescers)
        except ScoringError as exc:
            await _send_error(send, scoring_error_reply(exc, path, self._metrics))
        except RequestValidationError as exc:
            await _send_error(send, validation_error_reply(exc, path, self._metrics))
        except Exception as exc:
            await _send_error(send, unexpected_error_reply(exc, path, self._metrics))
        else:
            await _send(send, 200, body, [(b"server-timing", server_timing(timings).encode())])


class ScoringApp(FastAPI):
    """FastAPI, except that POSTs to the hot paths go to ``hot`` (set by the app factory)."""

    hot: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.hot is not None and scope["type"] == "http" and scope["method"] == "POST"
                and scope["path"] in HOT_PATHS):
            await self.hot(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


async def _read_body(scope: Scope, receive: Receive) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            check_declared_size(value.decode("latin-1"), MAX_EVENT_BYTES)
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_EVENT_BYTES:  # stop reading: validate_body names the limit
            return b"".join(chunks) + chunk
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, reply: ErrorReply) -> None:
    status, body, headers = reply
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await _send(send, status, orjson.dumps(body), extra)

