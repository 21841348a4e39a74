from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from http_api.deps import ServicesDep
from http_api.responses import JSONBytes

router = APIRouter(tags=["models"])


@router.get("/models")
async def list_models(services: ServicesDep) -> Response:
    """Loaded models (every version serving: champion, challenger, shadows) with version, framework, feature
    names, metrics and load time; the route per model; the last refusal per model, if any."""
    routes = services.models.routes()
    return JSONBytes({"models": [{**model.describe(), "role": role} for route in routes.values()
                                 for role, model in route.models()],
                      "routes": {name: route.describe() for name, route in routes.items()},
                      "errors": services.model_errors})
