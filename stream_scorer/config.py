"""All settings, from the environment (names from the product's seed), validated at start.

Groups are separate classes with their own env prefix so the seed's flat names (``REDIS_HOST``,
``KAFKA_BOOTSTRAP_SERVERS``, ``API_PORT``...) keep working. Tests build ``Settings(...)`` explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class _Group(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, validate_default=True)


class RedisSettings(_Group):
    model_config = SettingsConfigDict(env_prefix="REDIS_")

    host: str = "127.0.0.1"
    """Redis host of the feature store."""
    port: int = Field(default=6379, ge=1, le=65535)
    password: SecretStr | None = None
    """Never logged nor returned by /health."""
    db: int = Field(default=0, ge=0, le=15)
    max_connections: int = Field(default=64, ge=1)
    socket_timeout_sec: float = Field(default=0.5, gt=0)
    """Per-command timeout; a slower Redis counts as down (the API then serves defaults, degraded)."""

    @field_validator("password", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


class KafkaSettings(_Group):
    model_config = SettingsConfigDict(env_prefix="KAFKA_")

    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated host:port list."""

    @field_validator("bootstrap_servers")
    @classmethod
    def _hosts(cls, value: str) -> str:
        for hostport in value.split(","):
            host, _, port = hostport.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value


class TopicSettings(_Group):
    model_config = SettingsConfigDict(env_prefix="TOPIC_")

    transactions: str = "transactions"
    sessions: str = "sessions"
    fraud_labels: str = "fraud-labels"
    fraud_decisions: str = "fraud-decisions"
    personalization_scores: str = "personalization-scores"
    dlq: str = "scoring-dlq"
    shadow: str = "scoring-shadow"
    input_partitions: int = Field(default=6, ge=1)
    """Partitions of the input topics when the worker creates them."""


class WorkerSettings(_Group):
    model_config = SettingsConfigDict(env_prefix="WORKER_")

    app_id: str = "stream-scorer"
    """Faust app id: the consumer group."""
    batch_size: int = Field(default=500, ge=1)
    batch_wait_sec: float = Field(default=0.01, gt=0)
    fetch_max_wait_ms: int = Field(default=100, ge=1, le=30_000)
    """How long the broker may hold the worker's fetch when none of its partitions has new records (faust's
    own value is 1,500): partitions that run out of buffered records meanwhile wait for that fetch to return."""
    data_dir: Path = Path(".stack/worker")
    metrics_port: int = Field(default=9108, ge=0, le=65535)
    """Port of the worker's /metrics, /health and /ready (0 disables)."""
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    """The worker's asyncio event loop: uvloop (libuv, less CPU per socket event and task) or the standard one."""


_PLACEHOLDERS = frozenset({"changeme", "change-me", "changethis", "secret", "password", "admin", "test"})


class ApiSettings(_Group):
    model_config = SettingsConfigDict(env_prefix="API_")

    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    """uvicorn processes; each has its own connections and cache, and one ``/metrics`` merges their metrics
    (``stream_scorer.metrics``, multiprocess mode)."""
    cors_origins: str = ""
    """Comma-separated origins allowed by CORS (``*`` for any); empty disables CORS headers."""
    rate_limit_per_sec: float = Field(default=0.0, ge=0)
    """Requests per second each client (by ``X-API-Key`` header, else address) may make to /score/*; 0 = off."""
    rate_limit_burst: int = Field(default=0, ge=0)
    """Bucket size of the rate limit (default: one second of requests, at least 1)."""
    redis_down_status: int = 200
    """What /score answers when Redis is down: 200 with defaults and ``degraded: true``, or 503."""
    admin_key: SecretStr | None = None
    """Key for the admin endpoints (``POST /models/{name}/...``), sent as ``X-Admin-Key`` or ``Authorization:
    Bearer``; unset disables them (403). At least 16 characters, never a placeholder."""

    @field_validator("admin_key", mode="before")
    @classmethod
    def _admin_key(cls, value: object) -> object:
        if value in (None, ""):
            return None
        secret = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        if secret.lower() in _PLACEHOLDERS or len(secret) < 16:
            raise ValueError("must be a real secret of at least 16 characters (e.g. `openssl rand -hex 24`)")
        return value

    @field_validator("redis_down_status")
    @classmethod
    def _status(cls, value: int) -> int:
        if value not in (200, 503):
            raise ValueError("must be 200 (serve defaults, degraded) or 503")
        return value


class Settings(_Group):
    """The one settings object; ``Settings()`` reads the environment."""

    model_config = SettingsConfigDict(env_prefix="")

    model_dir: Path = Path("artifacts")
    """Root of the versioned model artifacts (``<model>/<version>/``)."""
    use_onnx: bool = True
    """Score with ONNX Runtime (the fastest path: ~20 us per row against ~350 us for XGBoost's own single-row
    predict; training checks that both agree within 1e-5). With ``EXPLAIN_METHOD=path``, a fraud model's score
    and explanation then come from one ONNX Runtime call when, at load, that call's leaf sums give the native
    model's raw scores on probe rows within 1e-4 (``OnnxModel.fuse``). ``false`` scores with the native framework. An
    artifact without an ONNX file is served natively either way."""
    explain_method: Literal["path", "treeshap"] = "path"
    """How ``top_risk_factors`` are computed for tree models: ``path`` (decision-path attribution in ONNX
    Runtime, ~50 us per row) or ``treeshap`` (the framework's exact TreeSHAP, milliseconds per row)."""
    model_reload_interval: float = Field(default=0.5, ge=0)
    """Seconds between checks of the routing files and version folders (hot swap without restart); 0 turns
    polling off (``POST /models/{name}/reload`` still works)."""
    model_alias_poll_interval: float = Field(default=30.0, ge=0)
    """Seconds between two lookups of each MLflow alias a routing entry names (``models:/fraud/champion``): moving
    the alias in the registry swaps the model in every process, like a routing edit. 0: aliases are resolved only
    at start and by ``POST /models/{name}/reload``."""
    drift_window: int = Field(default=10_000, ge=100)
    """Scored rows per model version that the drift gauges (PSI against the training baselines) look at."""
    drift_min_rows: int = Field(default=500, ge=1)
    """Rows needed before a version's PSI is published (a small sample gives a large, meaningless PSI)."""
    feature_cache_ttl: float = Field(default=300.0, ge=0)
    """Seconds a slow-changing feature may be served from the in-process cache (0 disables the cache)."""
    gc_threshold: int = Field(default=50_000, ge=0)
    """Allocations between two young-generation runs of Python's cycle collector in the worker and API
    processes (Python's default: 700); the objects alive after startup (models, code, settings) are frozen
    (``gc.freeze``, again after each model swap) so that full collections skip them. Scoring allocates a few
    objects per feature and decision and makes almost no cycles: with the defaults the collector took ~30% of
    the worker's CPU. 0 keeps Python's defaults."""
    heap_keep_mb: int = Field(default=64, ge=0, le=2047)
    """glibc's trim threshold in the worker and API processes, in megabytes: free memory at the top of the heap
    goes back to the kernel only beyond it (and blocks under 16 MiB come from the heap, not their own ``mmap``).
    Each batch allocates about what the previous one freed, and returned memory is faulted in again (~1.9 page
    faults per ``/score/batch`` row with glibc's defaults). It overrides ``MALLOC_TRIM_THRESHOLD_`` and
    ``MALLOC_MMAP_THRESHOLD_``. 0 keeps glibc's defaults; other C libraries are left alone."""
    log_level: LogLevel = "INFO"
    redis: RedisSettings = Field(default_factory=RedisSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class SettingsError(RuntimeError):
    pass


def load_settings() -> Settings:
    """Read the environment; a bad value raises ``SettingsError`` naming the variable."""
    groups: dict[str, _Group] = {}
    problems: list[str] = []
    for name, (cls, prefix) in _GROUPS.items():
        try:
            groups[name] = cls()
        except ValidationError as exc:
            problems.extend(_describe(exc, prefix))
    if not problems:
        try:
            return Settings.model_validate(groups)
        except ValidationError as exc:
            problems.extend(_describe(exc, ""))
    raise SettingsError("invalid settings: " + "; ".join(problems))


_GROUPS: dict[str, tuple[type[_Group], str]] = {
    "redis": (RedisSettings, "REDIS_"),
    "kafka": (KafkaSettings, "KAFKA_"),
    "topics": (TopicSettings, "TOPIC_"),
    "worker": (WorkerSettings, "WORKER_"),
    "api": (ApiSettings, "API_"),
}


def _describe(exc: ValidationError, prefix: str) -> list[str]:
    return [f"{prefix}{str(err['loc'][0]).upper() if err['loc'] else '?'}: {err['msg']} (got {err.get('input')!r})"
            for err in exc.errors()]
