"""The one error tree. The API maps it to HTTP once; the worker's policy uses ``retryable``."""

from __future__ import annotations


class ScoringError(Exception):
    status_code = 500
    retryable = False
    code = "scoring_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class InvalidEvent(ScoringError):
    """The input cannot be scored (stream: dead letter; HTTP: 422)."""

    status_code = 422
    code = "invalid_event"


class BatchTooLarge(ScoringError):
    status_code = 413
    code = "batch_too_large"


class FeatureStoreUnavailable(ScoringError):
    status_code = 503
    retryable = True
    code = "feature_store_unavailable"


class ModelNotLoaded(ScoringError):
    status_code = 503
    retryable = True
    code = "model_not_loaded"


class BrokerUnavailable(ScoringError):
    """Producing to Kafka failed; the batch is retried (its outputs are deterministic, so resends are duplicates)."""

    status_code = 503
    retryable = True
    code = "broker_unavailable"


class UnknownModel(ScoringError):
    status_code = 404
    code = "unknown_model"


class ModelRefused(ScoringError):
    """An artifact that cannot be served (feature names, framework, ONNX parity, a corrupt file); the models that
    serve keep serving."""

    status_code = 422
    code = "model_refused"


class RoutingConflict(ScoringError):
    """A routing edit that does not apply to the current routing (nothing to roll back to, already champion)."""

    status_code = 409
    code = "routing_conflict"


class AdminDisabled(ScoringError):
    status_code = 403
    code = "admin_disabled"


class AdminUnauthorized(ScoringError):
    status_code = 401
    code = "admin_unauthorized"
