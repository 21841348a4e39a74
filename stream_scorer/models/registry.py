"""Versions under ``MODEL_DIR/<name>/<version>/`` and the serving route of each model name.

A route (champion, optional challenger with its traffic share, shadows) is immutable; a refresh loads what the
routing file names next to what serves, then flips the reference in one assignment. Requests and batches hold
the route they started with, so nothing fails or waits during a swap, and old models are freed when the last
holder lets go. A version that cannot be loaded is refused with the reason while the old route keeps serving.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stream_scorer.errors import ModelNotLoaded
from stream_scorer.metrics import Metrics, drop_series
from stream_scorer.models.base import ExplainMethod, Model, ModelLoadError, ModelMetadata
from stream_scorer.models.loader import load_model
from stream_scorer.models.routing import Routing, RoutingError, read_routing

log = logging.getLogger(__name__)

_VERSION = re.compile(r"^v(\d+)$")
MLFLOW_PREFIX = "models:/"
_BUCKETS = 2**64


def list_versions(model_dir: Path, name: str) -> list[str]:
    """Versions of a model, oldest first (``v2`` before ``v10``)."""
    folder = model_dir / name
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p.name) for p in folder.iterdir() if p.is_dir() and (m := _VERSION.match(p.name))]
    return [name for _, name in sorted(found)]


def traffic_bucket(model_name: str, entity_id: str) -> float:
    """A stable number in [0, 1) per entity: the same card (or user) always falls in the same bucket, in every
    process and on both paths (Python's own ``hash`` is salted per process, so it cannot be used)."""
    digest = hashlib.blake2b(f"{model_name}\x00{entity_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _BUCKETS


@dataclass(frozen=True)
class ModelRoute:
    champion: Model
    challenger: Model | None = None
    share: float = 0.0
    shadows: tuple[Model, ...] = ()

    def assign(self, entity_ids: Sequence[str]) -> list[tuple[Model, list[int] | None]]:
        """Rows per serving model; ``None`` rows means every row (the common case: no challenger)."""
        if self.challenger is None or self.share <= 0.0:
            return [(self.champion, None)]
        name = self.champion.name
        to_challenger = [traffic_bucket(name, e) < self.share for e in entity_ids]
        champion_rows = [r for r, c in enumerate(to_challenger) if not c]
        challenger_rows = [r for r, c in enumerate(to_challenger) if c]
        if not challenger_rows:
            return [(self.champion, None)]
        if not champion_rows:
            return [(self.challenger, None)]
        return [(self.champion, champion_rows), (self.challenger, challenger_rows)]

    def models(self) -> list[tuple[str, Model]]:
        """Every model of the route with its role."""
        out = [("champion", self.champion)]
        if self.challenger is not None:
            out.append(("challenger", self.challenger))
        out.extend(("shadow", m) for m in self.shadows)
        return out

    def describe(self) -> dict[str, object]:
        return {"champion": self.champion.version,
                "challenger": None if self.challenger is None else {"version": self.challenger.version,
                                                                     "share": self.share},
                "shadows": [m.version for m in self.shadows]}


class ModelRegistry:
    def __init__(self, model_dir: Path, *, expected_features: Mapping[str, Sequence[str]], use_onnx: bool = False,
                 explain_method: ExplainMethod = "path", metrics: Metrics | None = None,
                 alias_poll_interval: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        """``alias_poll_interval``: seconds between two lookups of each MLflow alias a routing entry names
        (``models:/fraud/champion``), so that moving the alias swaps the model like editing the routing file;
        None: aliases are resolved only by a forced refresh (``POST /models/{name}/reload``)."""
        self.model_dir = model_dir
        self._alias_poll_interval = alias_poll_interval
        self._clock = clock
        self._aliases: dict[str, tuple[str | None, float]] = {}
        """Per MLflow alias URI: the version number it named at the last lookup, and when that was."""
        self._expected = {name: tuple(f) for name, f in expected_features.items()}
        self._use_onnx = use_onnx
        self._explain_method = explain_method
        self._metrics = metrics
        self._routes: dict[str, ModelRoute] = {}
        self._by_folder: dict[tuple[Path, tuple[tuple[str, int, int], ...]], Model] = {}
        self._signatures: dict[str, object] = {}
        self._lock = threading.Lock()
        self.errors: dict[str, str] = {}
        """The last refusal per model name (cleared by the next successful refresh)."""

    # ------------------------------------------------------------------------------------------- serving
    def route(self, name: str) -> ModelRoute:
        route = self._routes.get(name)
        if route is None:
            raise ModelNotLoaded(f"model '{name}' is not loaded")
        return route

    def get(self, name: str) -> Model:
        """The champion."""
        return self.route(name).champion

    def loaded(self) -> dict[str, Model]:
        """Champion per model name."""
        return {name: route.champion for name, route in dict(self._routes).items()}  # a refresh thread may add

    def routes(self) -> dict[str, ModelRoute]:
        return dict(self._routes)

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(self._expected)

    # ------------------------------------------------------------------------------------------- loading
    def metadata(self, name: str, version: str) -> ModelMetadata:
        return ModelMetadata.read(self.folder(name, version))

    def folder(self, name: str, version: str) -> Path:
        """Where a version's artifact lives (an MLflow URI is downloaded into ``<model_dir>/.mlflow-cache``)."""
        if version.startswith(MLFLOW_PREFIX):
            from stream_scorer.models.mlflow_source import fetch_mlflow_model

            return fetch_mlflow_model(version, self.model_dir / ".mlflow-cache")
        if not _VERSION.match(version):
            raise ModelLoadError(f"{name}: {version!r} is neither a version folder (vN) nor a models:/ URI")
        folder = self.model_dir / name / version
        if not (folder / "metadata.json").is_file():
            raise ModelLoadError(f"{folder}: no such model version (versions: "
                                 f"{', '.join(list_versions(self.model_dir, name)) or 'none'})")
        return folder

    def check(self, name: str, version: str) -> Model:
        """Load a version as serving would (feature names and order, framework, ONNX parity, a smoke score);
        raises :class:`ModelLoadError` naming the problem. Used before a routing edit is written."""
        with self._lock:
            return self._load(name, self.folder(name, version))

    def refresh(self, name: str, *, force: bool = False) -> bool:
        """Serve what the routing file says; ``True`` when the route changed. Thread-safe (runs off the loop).

        Without ``force`` nothing is loaded when the routing file, the version list and the served versions'
        metadata are unchanged since the last attempt (a refused artifact is not retried until they change).
        ``force`` also re-resolves MLflow aliases. Raises :class:`ModelLoadError` when refused."""
        with self._lock:
            signature = self._signature(name)
            if not force and signature == self._signatures.get(name):
                return False
            self._signatures[name] = signature
            try:
                route = self._build(name, read_routing(self.model_dir, name))
            except (ModelLoadError, RoutingError) as exc:
                message = str(exc)
                self.errors[name] = message
                self._count(name, "refused")
                self._refused(name, True)
                log.error("model route refused, the current one keeps serving",
                          extra={"model": name, "error": message})
                raise ModelLoadError(message) from None
            old = self._routes.get(name)
            self._routes[name] = route  # the flip: in-flight work keeps the route it holds
            self.errors.pop(name, None)
            self._refused(name, False)
            self._forget_unused()
            changed = old is None or old.describe() != route.describe() or old.models() != route.models()
            if changed:
                self._count(name, "loaded")
                self._publish(name, old, route)
                log.info("model route serving", extra={"model": name, **route.describe()})
            return changed

    def _build(self, name: str, routing: Routing) -> ModelRoute:
        champion_version = routing.champion or self._latest(name)
        champion = self._load(name, self.folder(name, champion_version))
        challenger, share = None, 0.0
        if routing.challenger is not None and routing.challenger.share > 0:
            challenger = self._load(name, self.folder(name, routing.challenger.version))
            share = routing.challenger.share
        shadows = tuple(self._load(name, self.folder(name, v)) for v in routing.shadows)
        return ModelRoute(champion, challenger, share, shadows)

    def _latest(self, name: str) -> str:
        versions = list_versions(self.model_dir, name)
        if not versions:
            raise ModelLoadError(f"{self.model_dir / name}: no model versions (run `stream-scorer train {name}`)")
        return versions[-1]

    def _load(self, name: str, folder: Path) -> Model:
        key = (folder.resolve(), _stamp(folder))  # a file replaced in place is a new model
        model = self._by_folder.get(key)
        if model is None:
            try:
                model = load_model(folder, expected_features=self._expected[name], use_onnx=self._use_onnx,
                                   explain_method=self._explain_method)
            except ModelLoadError:
                raise
            except Exception as exc:  # a framework error not caught by its adapter: still a refused artifact
                raise ModelLoadError(f"{folder}: cannot be loaded ({type(exc).__name__}: {exc})") from None
            if model.name != name:
                raise ModelLoadError(f"{folder}: metadata names model {model.name!r}, expected {name!r}")
            self._by_folder[key] = model
        return model

    def _signature(self, name: str) -> object:
        """What a refresh depends on: the routing (as parsed), the latest version when no champion is pinned,
        and the files of every version named; a few ``stat`` calls and one small JSON read."""
        try:
            routing = read_routing(self.model_dir, name)
        except RoutingError as exc:
            return "unreadable", str(exc)
        champion = routing.champion
        if champion is None:
            versions = list_versions(self.model_dir, name)
            champion = versions[-1] if versions else None
        challenger = (routing.challenger.version, routing.challenger.share) if routing.challenger else None
        refs = [champion, challenger[0] if challenger else None, *routing.shadows]
        stamps = tuple(_stamp(self.model_dir / name / v) for v in refs if v and _VERSION.match(v))
        aliases = tuple(self._alias_target(v) for v in refs if v and v.startswith(MLFLOW_PREFIX))
        return routing.champion, champion, challenger, routing.shadows, stamps, aliases

    def _alias_target(self, uri: str) -> str | None:
        """The version an MLflow URI named at its last lookup, looked up again once ``alias_poll_interval`` has
        passed; None without polling. A registry that does not answer keeps the last known answer (logged)."""
        if self._alias_poll_interval is None:
            return None
        known, at = self._aliases.get(uri, (None, float("-inf")))
        now = self._clock()
        if now - at < self._alias_poll_interval:
            return known
        from stream_scorer.models.mlflow_source import resolve_mlflow_version

        try:
            known = resolve_mlflow_version(uri)
        except ModelLoadError as exc:
            log.warning("MLflow alias lookup failed, the current route keeps serving", extra={"error": str(exc)})
        self._aliases[uri] = (known, now)
        return known

    def changed_on_disk(self, name: str) -> bool:
        """Whether a refresh would load something (the watcher's cheap poll)."""
        return self._signature(name) != self._signatures.get(name)

    def _forget_unused(self) -> None:
        serving = {id(m) for route in self._routes.values() for _, m in route.models()}
        self._by_folder = {k: m for k, m in self._by_folder.items() if id(m) in serving}

    # ------------------------------------------------------------------------------------------- metrics
    def _count(self, name: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.model_reloads.labels(name, outcome).inc()

    def _refused(self, name: str, refused: bool) -> None:
        if self._metrics is not None:
            self._metrics.model_route_refused.labels(name).set(1 if refused else 0)

    def _publish(self, name: str, old: ModelRoute | None, new: ModelRoute) -> None:
        if self._metrics is None:
            return
        served = self._metrics.model_served
        if old is not None:
            for role, model in old.models():
                drop_series(served, name, role, model.version)
        for role, model in new.models():
            share = {"champion": 1.0 - new.share, "challenger": new.share}.get(role, 0.0)
            served.labels(name, role, model.version).set(share)


def _stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Name, size and mtime of every file of a version folder: a file copied or replaced in place changes it."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return ()
    out = []
    for entry in entries:
        with contextlib.suppress(FileNotFoundError):
            if entry.is_file():
                st = entry.stat()
                out.append((entry.name, st.st_size, st.st_mtime_ns))
    return tuple(out)
