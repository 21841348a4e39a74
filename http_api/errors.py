"""The one mapping from errors to HTTP: our error tree, validation errors, and anything unexpected."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from http_api.responses import JSONBytes
from stream_scorer.errors import ScoringError
from stream_scorer.metrics import Metrics

log = logging.getLogger(__name__)

CLIENT_CLOSED_REQUEST = 499
"""Status recorded (metrics, access log) when the client disconnected before its answer (nginx's convention):
not a server error, and nothing is logged as one."""


def _field(loc: tuple[str | int, ...] | list[str | int]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) if parts else "body"


ErrorReply = tuple[int, dict[str, object], dict[str, str] | None]
"""Status, JSON body and extra headers of an error response."""


def scoring_error_reply(exc: ScoringError, path: str, metrics: Metrics) -> ErrorReply:
    metrics.errors.labels(exc.code, path).inc()
    return exc.status_code, exc.to_dict(), {"Retry-After": "1"} if exc.retryable else None


def validation_error_reply(exc: RequestValidationError, path: str, metrics: Metrics) -> ErrorReply:
    errors = [{"field": _field(e["loc"]), "message": e["msg"], "type": e["type"]} for e in exc.errors()]
    metrics.errors.labels("validation_error", path).inc()
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return 422, {"error": "validation_error", "message": f"{first['field']}: {first['message']}",
                 "field": first["field"], "errors": errors}, None


def unexpected_error_reply(exc: Exception, path: str, metrics: Metrics) -> ErrorReply:
    log.exception("unhandled error", extra={"path": path})
    metrics.errors.labels(type(exc).__name__, path).inc()
    return 500, {"error": "internal_error", "message": "internal error"}, None


def _endpoint(request: Request) -> str:
    """The route template (``/models/{name}/reload``), never the raw path: a metric label must stay bounded."""
    return getattr(request.scope.get("route"), "path", None) or "unmatched"


def install_error_handlers(app: FastAPI) -> None:
    def metrics(request: Request) -> Metrics:
        return request.app.state.services.metrics

    def respond(reply: ErrorReply) -> Response:
        status, body, headers = reply
        return JSONBytes(body, status_code=status, headers=headers)

    @app.exception_handler(ScoringError)
    async def scoring_error(request: Request, exc: ScoringError) -> Response:
        return respond(scoring_error_reply(exc, _endpoint(request), metrics(request)))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return respond(validation_error_reply(exc, _endpoint(request), metrics(request)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return JSONBytes({"error": "http_error", "message": exc.detail}, status_code=exc.status_code,
                         headers=getattr(exc, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
        return Response(status_code=CLIENT_CLOSED_REQUEST)  # nobody reads it; the metrics and access log do

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        return respond(unexpected_error_reply(exc, _endpoint(request), metrics(request)))
