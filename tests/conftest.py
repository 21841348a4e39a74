"""Shared fixtures. Integration tests get the real broker and Redis, a fresh topic set and consumer group per
test and a clean Redis database; under ``CI=true`` a missing service fails the test instead of skipping it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from http_api.app import create_app
from stream_scorer.config import KafkaSettings, RedisSettings, Settings, TopicSettings, WorkerSettings
from stream_scorer.core.redis_client import FeatureRedis
from tests.support.artifacts import write_xgboost_artifact
from tests.support.mlflow_store import empty_store, new_store
from tests.support.services import ServiceAddresses, real_services

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_REDIS_DB = 9


@pytest.fixture(scope="session")
def services() -> Iterator[ServiceAddresses]:
    try:
        with real_services() as found:
            yield found
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"integration services unavailable under CI=true: {exc}")
        pytest.skip(f"no Kafka/Redis available outside CI: {exc}")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small real XGBoost artifacts for both models (tests of the trained models use training/ itself)."""
    root = tmp_path_factory.mktemp("models")
    write_xgboost_artifact(root, "fraud")
    write_xgboost_artifact(root, "personalization")
    return root


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow SQLite database (skips without the mlflow extra, fails under CI=true)."""
    return empty_store(tmp_path_factory.mktemp("mlflow-template"))


@pytest.fixture
def mlflow_uri(mlflow_template_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The tracking URI of a fresh SQLite MLflow store under ``tmp_path`` whose default experiment
    (``stream-scorer``) keeps its artifacts there too; the working directory is ``tmp_path`` and MLflow's
    environment variables are cleared, so nothing reaches the repository or a real store."""
    from training.mlflow_log import DEFAULT_EXPERIMENT

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "mlflow"
    root.mkdir()
    return new_store(mlflow_template_db, root, DEFAULT_EXPERIMENT)


@pytest.fixture
def topics() -> TopicSettings:
    """A fresh set of topic names for one test."""
    suffix = uuid.uuid4().hex[:10]
    return TopicSettings(
        transactions=f"transactions-{suffix}", sessions=f"sessions-{suffix}",
        fraud_labels=f"fraud-labels-{suffix}", fraud_decisions=f"fraud-decisions-{suffix}",
        personalization_scores=f"personalization-scores-{suffix}", dlq=f"scoring-dlq-{suffix}",
        shadow=f"scoring-shadow-{suffix}", input_partitions=3,
    )


@pytest.fixture
def settings(services: ServiceAddresses, topics: TopicSettings, model_dir: Path, tmp_path: Path) -> Settings:
    """Settings for one integration test: real services, its own topics, consumer group and Redis database."""
    return Settings(
        model_dir=model_dir,
        gc_threshold=0,  # an API or worker run inside the test process must not retune pytest's collector
        heap_keep_mb=0,  # nor its allocator
        redis=RedisSettings(host=services.redis_host, port=services.redis_port, db=TEST_REDIS_DB),
        kafka=KafkaSettings(bootstrap_servers=services.kafka_bootstrap),
        topics=topics,
        worker=WorkerSettings(app_id=f"test-{uuid.uuid4().hex[:10]}", data_dir=tmp_path / "worker",
                              metrics_port=0, batch_wait_sec=0.05),
    )


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API in process (its lifespan entered) for the test's settings."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


@pytest.fixture
async def redis_client(settings: Settings) -> AsyncIterator[FeatureRedis]:
    """The test's Redis database, emptied before the test."""
    client = FeatureRedis(host=settings.redis.host, port=settings.redis.port, db=settings.redis.db,
                            decode_responses=True)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()
