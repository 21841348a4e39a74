"""The one mapping from errors to HTTP: our error tree, validation errors, and anything unexpected."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from http_api.responses import JSONBytes
from stream_scorer.errors import ScoringError
from stream_scorer.metrics import Metrics

log = logging.getLogger(__name__)


def _field(loc: tuple[str | int, ...] | list[str | int]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) if parts else "body"


def install_error_handlers(app: FastAPI) -> None:
    def metrics(request: Request) -> Metrics:
        return request.app.state.services.metrics

    @app.exception_handler(ScoringError)
    async def scoring_error(request: Request, exc: ScoringError) -> Response:
        metrics(request).errors.labels(exc.code, request.url.path).inc()
        headers = {"Retry-After": "1"} if exc.retryable else None
        return JSONBytes(exc.to_dict(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"field": _field(e["loc"]), "message": e["msg"], "type": e["type"]} for e in exc.errors()]
        metrics(request).errors.labels("validation_error", request.url.path).inc()
        first = errors[0] if errors else {"field": "body", "message": "invalid request"}
        return JSONBytes({"error": "validation_error", "message": f"{first['field']}: {first['message']}",
                          "field": first["field"], "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return JSONBytes({"error": "http_error", "message": exc.detail}, status_code=exc.status_code,
                         headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.url.path})
        metrics(request).errors.labels(type(exc).__name__, request.url.path).inc()
        return JSONBytes({"error": "internal_error", "message": "internal error"}, status_code=500)
