"""Every Prometheus metric, defined once on an injected registry (tests pass a fresh one).

Several API processes (``API_WORKERS`` > 1) share one port, so a scrape reaches one of them: they then run in
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, prepared by ``stream-scorer api``), each
writing its values to files in that directory, and ``/metrics`` answers with every live process's values merged
(:func:`exposition`): counters and histograms summed, gauges as their ``multiprocess_mode`` says.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

M = TypeVar("M", Counter, Histogram)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
_FAST_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
_SCORE_BUCKETS = tuple(round(i / 20, 2) for i in range(1, 21))
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        # HTTP (seed names)
        self.requests = Counter("inference_requests_total", "Requests by endpoint and status.",
                                ["endpoint", "status"], registry=r)
        self.request_duration = Histogram("inference_request_duration_seconds", "Request latency.",
                                          ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r)
        self.active_requests = Gauge("inference_active_requests", "Requests in flight.", registry=r,
                                     multiprocess_mode="livesum")
        self.errors = Counter("inference_errors_total", "Errors by type and endpoint.", ["type", "endpoint"],
                              registry=r)
        # scoring core (seed names)
        self.feature_fetch_duration = Histogram("feature_fetch_duration_seconds", "Feature store read latency "
                                                "(one round trip per request or batch).", ["model"],
                                                buckets=_FAST_BUCKETS, registry=r)
        self.model_inference_duration = Histogram(
            "model_inference_duration_seconds", "Model call latency by stage: predict (the model call giving the "
            "scores and, for fraud, their contributions), explain (fraud: ranking the contributions into the top "
            "risk factors).", ["model", "stage"], buckets=_FAST_BUCKETS, registry=r)
        self.prediction_scores = Histogram("prediction_scores", "Distribution of prediction scores.",
                                           ["model", "version"], buckets=_SCORE_BUCKETS, registry=r)
        self.decisions = Counter("scoring_decisions_total", "Decisions by model, serving version and action "
                                 "(fraud) or user segment (personalization).", ["model", "version", "action"],
                                 registry=r)
        self.features_missing = Counter("features_missing_total", "Features served from their default.",
                                        ["model", "feature"], registry=r)
        self.feature_store_errors = Counter("feature_store_errors_total", "Failed feature store calls.",
                                            ["operation"], registry=r)
        self.degraded_decisions = Counter("degraded_decisions_total", "Decisions made from defaults because "
                                          "the feature store was down.", ["model"], registry=r)
        self.feature_cache = Counter("feature_cache_requests_total", "Feature cache lookups.", ["result"],
                                     registry=r)
        self.redis_up = Gauge("feature_store_up", "1 when the last feature store call succeeded.", registry=r,
                              multiprocess_mode="livemin")
        # model lifecycle
        self.model_served = Gauge("model_served", "Models serving now, by role (champion, challenger, shadow); "
                                  "the value is the share of entities routed to it (0 for shadows).",
                                  ["model", "role", "version"], registry=r, multiprocess_mode="livemostrecent")
        self.model_route_refused = Gauge("model_route_refused", "1 while the routing a model's files ask for "
                                         "was refused (the previous route keeps serving; reason in /models).",
                                         ["model"], registry=r, multiprocess_mode="livemax")
        self.model_reloads = Counter("model_reloads_total", "Route refreshes that loaded a change, or were "
                                     "refused (the old route kept serving).", ["model", "outcome"], registry=r)
        self.shadow_predictions = Counter("shadow_predictions_total", "Shadow scores, by whether the shadow's "
                                          "action equals the served decision's (agree, disagree), or the shadow "
                                          "failed (error; the decisions were served all the same).",
                                          ["model", "version", "agreement"], registry=r)
        # stream
        self.stream_events = Counter("stream_events_total", "Consumed events by topic and outcome.",
                                     ["topic", "outcome"], registry=r)
        self.event_to_decision = Histogram("stream_event_to_decision_seconds", "Kafka record timestamp to "
                                           "decision produced.", ["topic"], buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("stream_batch_size", "Events per processed batch.", ["topic"],
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.dlq = Counter("stream_dlq_total", "Events sent to the dead-letter topic.", ["topic", "reason"],
                           registry=r)
        self.consumer_lag = Gauge("stream_consumer_lag", "End offset minus committed offset.",
                                  ["topic", "partition"], registry=r, multiprocess_mode="livemostrecent")
        self.feature_update_duration = Histogram("feature_update_duration_seconds", "Streaming feature update "
                                                 "latency per batch.", ["topic"], buckets=_FAST_BUCKETS, registry=r)
        self.retries = Counter("stream_retries_total", "Retried batches after a retryable failure.",
                               ["topic", "error"], registry=r)
        self.key_mismatches = Counter("stream_key_mismatch_total", "Events whose Kafka key is not their card_id / "
                                      "user_id (missing: no key; other: another key). Scored all the same, but one "
                                      "card's events may then sit in several partitions: their order and each "
                                      "worker's view of the card's features are no longer guaranteed.",
                                      ["topic", "kind"], registry=r)
        # drift: population stability index against the baselines in the model's metadata.json
        self.score_psi = Gauge("model_score_psi", "PSI of the scores of the last scored rows against the training "
                               "validation scores (score_baseline deciles); < 0.1 stable, 0.1-0.25 moderate shift, "
                               "> 0.25 major shift.", ["model", "version"], registry=r,
                               multiprocess_mode="livemostrecent")
        self.feature_psi = Gauge("model_feature_psi", "PSI of a top feature over the last scored rows against the "
                                 "training rows (feature_baseline deciles); < 0.1 stable, 0.1-0.25 moderate shift, "
                                 "> 0.25 major shift.", ["model", "version", "feature"], registry=r,
                                 multiprocess_mode="livemostrecent")
        self.drift_window_rows = Gauge("model_drift_window_rows", "Scored rows in the drift window the PSI gauges "
                                       "are computed on (none published below the minimum).", ["model", "version"],
                                       registry=r, multiprocess_mode="livemostrecent")

    def child(self, metric: M, *labels: str) -> M:
        """``metric.labels(*labels)``, remembered: the client's ``labels`` validates and locks on every call
        (~2 us, several per scored request). Only for metrics whose label sets are never ``remove``d (counters
        and histograms of the hot path), or a removed child would keep being written."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found


_OBSERVE_ONE_BY_ONE_BELOW = 12


def observe_many(histogram: Histogram, values: Sequence[float] | np.ndarray) -> None:
    """``histogram.observe`` for each value, in one bucket search for the batch (numpy) instead of a Python loop
    over the buckets per value. Writes the client's own bucket and sum storage (``_upper_bounds``, ``_buckets``,
    ``_sum``; a test checks the exposition equals one ``observe`` per value)."""
    if len(values) < _OBSERVE_ONE_BY_ONE_BELOW:  # numpy's per-call overhead is ~8 us: a few values go one by one
        for value in values:
            histogram.observe(float(value))
        return
    amounts = np.asarray(values, dtype=np.float64)
    bounds = histogram._upper_bounds
    index = np.searchsorted(np.asarray(bounds, dtype=np.float64), amounts, side="left")  # first bound >= value
    counts = np.bincount(index, minlength=len(bounds) + 1)[:len(bounds)]  # past the last bound: NaN, no bucket
    histogram._sum.inc(float(amounts.sum()))
    buckets = histogram._buckets
    for i in np.flatnonzero(counts).tolist():
        buckets[i].inc(int(counts[i]))


MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The directory of the processes' metric files when several processes serve (see the module's docstring)."""
    return os.environ.get(MULTIPROCESS_ENV) or None


def exposition(registry: CollectorRegistry) -> bytes:
    """The ``/metrics`` text: this process's registry, or every live process's values merged (a process that
    died without saying so, killed or crashed, is forgotten first; series retired by :func:`drop_series` left
    out)."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(registry)
    forget_dead_processes(path)
    merged = CollectorRegistry()
    merged.register(_Merged(path))
    return generate_latest(merged)


class _Merged(Collector):
    def __init__(self, path: str) -> None:
        self._processes = multiprocess.MultiProcessCollector(None, path)

    def collect(self) -> Iterable[Metric]:
        return without_retired(self._processes.collect())


def without_retired(metrics: Iterable[Metric]) -> Iterator[Metric]:
    """The metrics with their gauges' NaN samples (series retired in multiprocess mode) left out."""
    for metric in metrics:
        if metric.type == "gauge":
            metric.samples = [sample for sample in metric.samples if not math.isnan(sample.value)]
        yield metric


def forget_dead_processes(path: str) -> None:
    """``live*`` gauges of processes that no longer run leave the merged values (a worker uvicorn restarted after a
    crash never ran its shutdown)."""
    for file in Path(path).glob("gauge_live*_*.db"):
        pid = int(file.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)
        except PermissionError:  # alive, another user's
            pass


def prepare_multiprocess() -> Path | None:
    """Before starting several processes: an empty directory for their metric files, set in the environment the
    processes inherit: ``PROMETHEUS_MULTIPROC_DIR`` if set (emptied: files left by an earlier run would count
    again), else a new temporary directory, returned for the caller to remove when the processes are done."""
    given = multiprocess_dir()
    if given is not None:  # may be a mount point: its files are removed, not the directory
        Path(given).mkdir(parents=True, exist_ok=True)
        for stale in Path(given).glob("*.db"):
            stale.unlink(missing_ok=True)
        return None
    path = Path(tempfile.mkdtemp(prefix="stream-scorer-metrics-"))
    os.environ[MULTIPROCESS_ENV] = str(path)
    return path


def process_exiting() -> None:
    """A serving process stops: its ``live*`` gauges leave the merged values."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())


def drop_series(gauge: Gauge, *labels: str) -> None:
    """Remove a gauge's series (a model version swapped out, a partition revoked). In multiprocess mode a series
    cannot leave the processes' files: it is set to NaN instead, which :func:`exposition` leaves out. A series
    never set is left alone."""
    if multiprocess_dir() is None:
        with suppress(KeyError):
            gauge.remove(*labels)
    elif tuple(labels) in gauge._metrics:  # the client's own children (no public lookup without creating one)
        gauge.labels(*labels).set(math.nan)
