"""Liveness, readiness and Prometheus metrics. Nothing here returns a secret or an address with a password."""

from __future__ import annotations

import time

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from http_api.deps import ServicesDep
from http_api.responses import JSONBytes
from stream_scorer.bootstrap import MODEL_FEATURES
from stream_scorer.metrics import exposition

router = APIRouter(tags=["operations"])


async def _redis_status(services: ServicesDep) -> dict[str, object]:
    try:
        rtt = await services.store.ping()
    except Exception as exc:  # any failure means "down" here; the reason is reported, not raised
        return {"status": "down", "error": type(exc).__name__}
    return {"status": "up", "latency_ms": round(rtt * 1000, 3)}


def _model_status(services: ServicesDep) -> dict[str, object]:
    loaded = services.models.loaded()
    out: dict[str, object] = {}
    for name in MODEL_FEATURES:
        model = loaded.get(name)
        if model is not None:
            status: dict[str, object] = {"status": "loaded", "version": model.version, "runtime": model.runtime}
            if name in services.model_errors:  # the last reload was refused; this version keeps serving
                status["reload_error"] = services.model_errors[name]
            out[name] = status
        else:
            out[name] = {"status": "missing", "error": services.model_errors.get(name, "not loaded")}
    return out


@router.get("/health")
async def health(services: ServicesDep) -> Response:
    """Component status with latencies. Always 200 while the process runs (liveness); see ``status``."""
    start = time.perf_counter()
    redis = await _redis_status(services)
    models = _model_status(services)
    ok = redis["status"] == "up" and all(m["status"] == "loaded" for m in models.values())  # type: ignore[index]
    return JSONBytes({"status": "ok" if ok else "degraded", "components": {"redis": redis, "models": models},
                      "check_ms": round((time.perf_counter() - start) * 1000, 3)})


@router.get("/ready")
async def ready(services: ServicesDep) -> Response:
    """503 until every model is loaded and Redis answers."""
    redis = await _redis_status(services)
    models = _model_status(services)
    ok = redis["status"] == "up" and all(m["status"] == "loaded" for m in models.values())  # type: ignore[index]
    return JSONBytes({"ready": ok, "redis": redis["status"],
                      "models": {k: v["status"] for k, v in models.items()}},  # type: ignore[index]
                     status_code=200 if ok else 503)


@router.get("/metrics")
async def metrics(services: ServicesDep) -> Response:
    return Response(exposition(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
