"""The FastAPI app factory. The lifespan enters the one composition root; no client exists at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from http_api.deps import Coalescers
from http_api.errors import install_error_handlers
from http_api.hot_routes import HotRoutes, ScoringApp
from http_api.middleware import RequestContextMiddleware
from http_api.rate_limit import RateLimiter
from http_api.routes import admin, health, models, score
from stream_scorer import __version__
from stream_scorer.bootstrap import build_services
from stream_scorer.config import Settings, load_settings
from stream_scorer.gc_tuning import tune_gc
from stream_scorer.heap_tuning import keep_freed_heap
from stream_scorer.logging import configure_logging
from stream_scorer.metrics import Metrics, process_exiting


def create_app(settings: Settings | None = None, *, registry: CollectorRegistry | None = None) -> FastAPI:
    settings = settings or Settings()
    registry = registry if registry is not None else CollectorRegistry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with build_services(settings, registry=registry, metrics=metrics) as services:
            app.state.services = services
            app.state.coalescers = coalescers = Coalescers.build(services)
            tune_gc(settings.gc_threshold)
            keep_freed_heap(settings.heap_keep_mb)
            try:
                yield
            finally:
                try:
                    await coalescers.aclose()  # in-flight batches finish before Redis is closed
                finally:
                    process_exiting()

    metrics = Metrics(registry)
    app = ScoringApp(title="stream-scorer", version=__version__, lifespan=lifespan,
                  description="Real-time fraud and personalization scoring; the same core scores the Kafka "
                              "stream.")
    api = settings.api
    cors: dict[str, Any] | None = None
    if api.cors_origins:
        cors = {"allow_origins": [o.strip() for o in api.cors_origins.split(",") if o.strip()],
                "allow_methods": ["GET", "POST"],
                "allow_headers": ["Content-Type", "X-Request-ID", "X-API-Key", "X-Admin-Key", "Authorization"],
                "expose_headers": ["X-Request-ID", "Server-Timing"]}
        app.add_middleware(CORSMiddleware, **cors)
    limiter = RateLimiter(api.rate_limit_per_sec, api.rate_limit_burst) if api.rate_limit_per_sec > 0 else None
    app.add_middleware(RequestContextMiddleware, metrics=metrics, limiter=limiter)
    hot: ASGIApp = RequestContextMiddleware(HotRoutes(app, metrics), metrics=metrics, limiter=limiter)
    app.hot = CORSMiddleware(hot, **cors) if cors else hot
    install_error_handlers(app)
    app.include_router(score.router)
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(admin.router)
    return app


def create_app_from_env() -> FastAPI:
    """The factory uvicorn's worker processes call: settings from the environment, JSON logs configured."""
    settings = load_settings()
    configure_logging(settings.log_level, "api")
    return create_app(settings)
