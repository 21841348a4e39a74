"""The one composition root: builds Redis, the feature store, models, metrics and the Scorer from Settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from stream_scorer.config import Settings
from stream_scorer.core.feature_cache import SlowFeatureCache
from stream_scorer.core.feature_store import RedisFeatureStore
from stream_scorer.core.features import FRAUD_FEATURE_NAMES, NOT_DRIFT_MONITORED, PERSONALIZATION_FEATURE_NAMES
from stream_scorer.core.fraud_decisions import NATIVE as NATIVE_DECISIONS
from stream_scorer.core.redis_client import create_redis
from stream_scorer.core.scorer import FRAUD_MODEL, PERSONALIZATION_MODEL, Scorer
from stream_scorer.core.window import NATIVE as NATIVE_WINDOW
from stream_scorer.metrics import Metrics
from stream_scorer.models.base import ModelLoadError
from stream_scorer.models.registry import ModelRegistry
from stream_scorer.models.watcher import ModelWatcher
from stream_scorer.monitoring import DriftTracker

log = logging.getLogger(__name__)

MODEL_FEATURES: dict[str, tuple[str, ...]] = {
    FRAUD_MODEL: FRAUD_FEATURE_NAMES,
    PERSONALIZATION_MODEL: PERSONALIZATION_FEATURE_NAMES,
}


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: aioredis.Redis
    store: RedisFeatureStore
    models: ModelRegistry
    metrics: Metrics
    scorer: Scorer
    watcher: ModelWatcher

    @property
    def model_errors(self) -> dict[str, str]:
        """Models refused at start or at the last reload (a refused reload keeps the old route serving)."""
        return self.models.errors


def load_models(models: ModelRegistry, names: Sequence[str]) -> dict[str, str]:
    """Load each model's route (routing file, else the latest version); returns the refusals."""
    for name in names:
        try:
            models.refresh(name, force=True)
        except ModelLoadError:
            pass  # logged by the registry, kept in ``models.errors``
    return dict(models.errors)


@asynccontextmanager
async def build_services(settings: Settings, *, registry: CollectorRegistry | None = None,
                         metrics: Metrics | None = None,
                         models: Sequence[str] = (FRAUD_MODEL, PERSONALIZATION_MODEL)) -> AsyncIterator[Services]:
    """Everything a process needs; pass ``metrics`` when something (the API middleware) already holds them."""
    if not NATIVE_WINDOW:
        log.warning("the C extension stream_scorer.core._window is not built (no C compiler at install?): card "
                    "windows are aggregated in Python, same results, ~10 us more per transaction")
    if not NATIVE_DECISIONS:
        log.warning("the C extension stream_scorer.core._decide is not built (no C compiler at install?): "
                    "fraud decisions are built in Python, same decisions, ~10 us more per transaction")
    redis = create_redis(settings.redis)
    try:
        metrics = metrics if metrics is not None else Metrics(registry)
        store = RedisFeatureStore(redis, cache=SlowFeatureCache(settings.feature_cache_ttl, metrics=metrics))
        model_registry = ModelRegistry(settings.model_dir, expected_features=MODEL_FEATURES,
                                       use_onnx=settings.use_onnx, explain_method=settings.explain_method,
                                       metrics=metrics,
                                       alias_poll_interval=settings.model_alias_poll_interval or None)
        load_models(model_registry, models)
        drift = DriftTracker(metrics, window=settings.drift_window, min_rows=settings.drift_min_rows,
                             exclude=NOT_DRIFT_MONITORED)
        scorer = Scorer(store, model_registry, metrics, drift=drift)
        async with ModelWatcher(model_registry, models, settings.model_reload_interval) as watcher:
            yield Services(settings, redis, store, model_registry, metrics, scorer, watcher)
    finally:
        await redis.aclose()
