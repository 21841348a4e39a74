from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from http_api.deps import ServicesDep
from http_api.responses import JSONBytes

router = APIRouter(tags=["models"])


@router.get("/models")
async def list_models(services: ServicesDep) -> Response:
    """Loaded models with version, framework, feature names, metrics and load time."""
    return JSONBytes({"models": [m.describe() for m in services.models.loaded().values()],
                      "errors": services.model_errors})
