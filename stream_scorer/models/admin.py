"""The model lifecycle operations shared by ``stream-scorer models ...`` and the admin HTTP endpoints.

Each edit of a routing file first loads every version it brings in exactly as serving would, so a corrupt
artifact or one with other feature names is refused before any process tries it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stream_scorer.errors import ModelRefused, RoutingConflict, UnknownModel
from stream_scorer.models import routing as r
from stream_scorer.models.base import ModelLoadError
from stream_scorer.models.registry import ModelRegistry, list_versions


def require_known(registry: ModelRegistry, name: str) -> None:
    if name not in registry.model_names:
        raise UnknownModel(f"unknown model {name!r} (models: {', '.join(registry.model_names)})", field="name")


def _edit(registry: ModelRegistry, name: str, edit: Any, *args: Any) -> r.Routing:
    require_known(registry, name)

    def check(version: str) -> None:
        registry.check(name, version)

    try:
        routing: r.Routing = edit(registry.model_dir, name, *args, check=check)
    except ModelLoadError as exc:
        raise ModelRefused(str(exc), field="version") from None
    except r.RoutingError as exc:
        raise RoutingConflict(str(exc)) from None
    return routing


def _latest(model_dir: Any, model: str) -> str | None:
    versions = list_versions(model_dir, model)
    return versions[-1] if versions else None


def promote(registry: ModelRegistry, name: str, version: str | None = None) -> r.Routing:
    def edit(model_dir: Any, model: str, *, check: r.Check) -> r.Routing:
        return r.promote(model_dir, model, version, latest=lambda: _latest(model_dir, model), check=check)

    return _edit(registry, name, edit)


def rollback(registry: ModelRegistry, name: str) -> r.Routing:
    return _edit(registry, name, r.rollback)


def set_traffic(registry: ModelRegistry, name: str, version: str | None, share: float) -> r.Routing:
    def edit(model_dir: Any, model: str, *, check: r.Check) -> r.Routing:
        return r.set_traffic(model_dir, model, version, share, latest=lambda: _latest(model_dir, model), check=check)

    return _edit(registry, name, edit)


def set_shadows(registry: ModelRegistry, name: str, versions: Sequence[str]) -> r.Routing:
    return _edit(registry, name, r.set_shadows, list(versions))


def status(registry: ModelRegistry, name: str) -> dict[str, Any]:
    """The routing file and every version on disk with its headline metrics."""
    require_known(registry, name)
    try:
        routing = r.read_routing(registry.model_dir, name).to_json()
    except r.RoutingError as exc:
        routing = {"error": str(exc)}
    versions: list[dict[str, Any]] = []
    for version in list_versions(registry.model_dir, name):
        try:
            meta = registry.metadata(name, version)
        except ModelLoadError as exc:
            versions.append({"version": version, "error": str(exc)})
            continue
        metrics = meta.metrics
        versions.append({"version": version, "framework": meta.framework, "created_at": meta.raw.get("created_at"),
                         "algorithm": meta.raw.get("algorithm"),
                         "metrics": {k: metrics[k] for k in ("average_precision", "auc_roc", "ndcg_at_10")
                                     if k in metrics}})
    return {"model": name, "routing": routing, "versions": versions}
