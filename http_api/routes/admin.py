"""Model lifecycle over HTTP: read the routing, edit it (admin key), reload. Every other API process and the
workers pick a routing edit up on their own within ``MODEL_RELOAD_INTERVAL``; this process reloads at once."""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from http_api.body import openapi_body, parse_body
from http_api.deps import ServicesDep
from http_api.responses import JSONBytes
from stream_scorer.bootstrap import Services
from stream_scorer.errors import AdminDisabled, AdminUnauthorized, ModelRefused
from stream_scorer.models import admin
from stream_scorer.models.base import ModelLoadError
from stream_scorer.models.routing import Routing

router = APIRouter(tags=["models"])
MAX_ADMIN_BYTES = 4096


async def require_admin(request: Request) -> None:
    expected = request.app.state.services.settings.api.admin_key
    if expected is None:
        raise AdminDisabled("admin endpoints are disabled: set API_ADMIN_KEY")
    given = request.headers.get("x-admin-key") or ""
    auth = request.headers.get("authorization") or ""
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not given or not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise AdminUnauthorized("missing or wrong admin key (X-Admin-Key or Authorization: Bearer)",
                                field="X-Admin-Key")


AdminDep = Annotated[None, Depends(require_admin)]


class PromoteBody(BaseModel):
    version: str | None = Field(default=None, description="Default: the current challenger.", examples=["v3"])


class TrafficBody(BaseModel):
    version: str | None = Field(default=None, examples=["v3"], description="Default: the current challenger "
                                                                          "(changes its share).")
    share: float = Field(ge=0, le=1, description="Share of entities (stable per card or user); 0 removes the "
                                                 "challenger.", examples=[0.1])


class ShadowBody(BaseModel):
    versions: list[str] = Field(default_factory=list, examples=[["v4"]])


async def _optional_body(request: Request, schema: type[Any]) -> Any:
    if not await request.body():
        return schema()
    return await parse_body(request, schema, MAX_ADMIN_BYTES)


async def _applied(services: Services, name: str, routing: Routing) -> Response:
    """Reload here at once and report what serves now. The edit was checked and written (every process applies
    it); a route that still cannot load (e.g. another entry's folder was deleted) is reported, not hidden."""
    error = None
    try:
        await services.watcher.reload(name)
    except ModelLoadError as exc:
        error = str(exc)
    serving = services.models.route(name).describe() if name in services.models.loaded() else None
    return JSONBytes({"model": name, "routing": routing.to_json(), "serving": serving, "serving_error": error})


@router.get("/models/{name}")
async def model_status(name: str, services: ServicesDep) -> Response:
    """The routing file, what this process serves, and every version on disk with its headline metrics."""
    body = await asyncio.to_thread(admin.status, services.models, name)
    body["serving"] = services.models.route(name).describe() if name in services.models.loaded() else None
    body["error"] = services.model_errors.get(name)
    return JSONBytes(body)


@router.post("/models/{name}/reload")
async def reload_model(name: str, services: ServicesDep, _: AdminDep) -> Response:
    """Load what the routing file (or the latest version) names next to what serves, then flip; re-resolves
    MLflow aliases. A refused artifact answers 422 with the reason while the current models keep serving."""
    admin.require_known(services.models, name)
    try:
        changed = await services.watcher.reload(name)
    except ModelLoadError as exc:
        raise ModelRefused(str(exc)) from None
    return JSONBytes({"model": name, "changed": changed, "serving": services.models.route(name).describe()})


@router.post("/models/{name}/promote", openapi_extra=openapi_body(PromoteBody, {"version": {"version": "v3"}}))
async def promote_model(name: str, request: Request, services: ServicesDep, _: AdminDep) -> Response:
    """Make a version (default: the challenger) the champion; the old champion is kept for rollback."""
    body: PromoteBody = await _optional_body(request, PromoteBody)
    routing = await asyncio.to_thread(admin.promote, services.models, name, body.version)
    return await _applied(services, name, routing)


@router.post("/models/{name}/rollback")
async def rollback_model(name: str, services: ServicesDep, _: AdminDep) -> Response:
    """Back to the previous champion."""
    routing = await asyncio.to_thread(admin.rollback, services.models, name)
    return await _applied(services, name, routing)


@router.post("/models/{name}/traffic", openapi_extra=openapi_body(TrafficBody, {"ten percent": {
    "version": "v3", "share": 0.1}}))
async def set_traffic(name: str, request: Request, services: ServicesDep, _: AdminDep) -> Response:
    """Route a stable share of cards (or users) to a challenger version."""
    body = await parse_body(request, TrafficBody, MAX_ADMIN_BYTES)
    routing = await asyncio.to_thread(admin.set_traffic, services.models, name, body.version, body.share)
    return await _applied(services, name, routing)


@router.post("/models/{name}/shadow", openapi_extra=openapi_body(ShadowBody, {"one": {"versions": ["v4"]}}))
async def set_shadows(name: str, request: Request, services: ServicesDep, _: AdminDep) -> Response:
    """Versions that score every event in shadow (an empty list stops shadowing)."""
    body: ShadowBody = await _optional_body(request, ShadowBody)
    routing = await asyncio.to_thread(admin.set_shadows, services.models, name, body.versions)
    return await _applied(services, name, routing)
