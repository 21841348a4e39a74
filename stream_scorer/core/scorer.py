"""THE scoring core, shared by the HTTP API and the stream worker. Imports neither FastAPI nor faust.

One call scores a batch (an HTTP request is a batch of one): one feature-store round trip, one model call for
the whole matrix, then the decisions. The stream also applies each event's feature update after scoring it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from schemas.decisions import FraudDecision, PersonalizationDecision, ShadowScore, trusted
from schemas.events import SessionEvent, TransactionEvent
from stream_scorer.core import decisions as d
from stream_scorer.core.batch_merge import (
    card_parts,
    merge_card_batch,
    merge_user_batch,
    session_update,
    tx_update,
    user_parts,
)
from stream_scorer.core.explain import top_factors
from stream_scorer.core.feature_state import LabelUpdate
from stream_scorer.core.feature_store import FeatureStore, FraudKey, PersonalizationKey
from stream_scorer.core.features import (
    FRAUD_FEATURE_NAMES,
    PERSONALIZATION_FEATURE_NAMES,
    FraudState,
    PersonalizationState,
    fraud_feature_rows,
    missing_fraud_feature_rows,
    missing_personalization_features,
    personalization_features,
)
from stream_scorer.core.fraud_decisions import fraud_decisions
from stream_scorer.core.identified import Identified
from stream_scorer.core.routed import Groups, explain_routed, predict_routed, rows_of, score_shadows
from stream_scorer.core.store_calls import STREAM_PART_SIZE, StoreCalls, Updates
from stream_scorer.metrics import Metrics, observe_many
from stream_scorer.models.base import Model
from stream_scorer.models.registry import ModelRegistry, ModelRoute
from stream_scorer.monitoring import DriftTracker

Timings = dict[str, float]
"""Milliseconds per scoring stage, for ``Server-Timing``: ``features`` (the read and the feature vectors),
``model`` (the model call giving scores and, for fraud, contributions: one ONNX Runtime call when the model is
fused, see ``OnnxModel``) and ``explain`` (ranking the contributions into the top risk factors)."""

FRAUD_MODEL = "fraud"
PERSONALIZATION_MODEL = "personalization"




class Scorer:
    def __init__(self, store: FeatureStore, registry: ModelRegistry, metrics: Metrics, *,
                 clock: Callable[[], float] = time.time, drift: DriftTracker | None = None,
                 part_size: int = STREAM_PART_SIZE) -> None:
        self._store = store
        self._calls = StoreCalls(metrics, part_size=part_size)
        self._registry = registry
        self._metrics = metrics
        self._clock = clock
        self._drift = drift
        self._routes_seen: dict[str, ModelRoute] = {}

    # ------------------------------------------------------------------------------------------------- fraud
    async def score_transactions(self, items: Sequence[Identified[TransactionEvent]], *, apply_updates: bool = False,
                                 allow_degraded: bool = False, timings: Timings | None = None,
                                 shadow: list[ShadowScore] | None = None) -> list[FraudDecision]:
        """Score transactions as of their own time; with ``apply_updates`` (the stream) then record them.

        ``timings``, when given, receives the milliseconds spent on features, model and explanation; ``shadow``
        receives the shadow models' scores (the stream publishes them). Each card is served by the champion or,
        for its stable share of cards, the challenger.
        """
        if not items:
            return []
        start = time.perf_counter()
        route = self._route(FRAUD_MODEL)  # held to the end: a swap meanwhile does not affect this batch

        def decide(part: Sequence[Identified[TransactionEvent]], states: Sequence[FraudState],
                   degraded: bool) -> list[FraudDecision]:
            return self._fraud_decisions(part, states, route, start, timings, shadow, degraded)

        updates = Updates(merge_card_batch, tx_update, self._store.send_transactions, card_parts)
        return await self._calls.score(items, FRAUD_MODEL, self._store.send_fraud_fetch, _fraud_key, FraudState, decide,
                                       allow_degraded, updates if apply_updates else None)

    def _fraud_decisions(self, items: Sequence[Identified[TransactionEvent]], states: Sequence[FraudState],
                         route: ModelRoute, start: float, timings: Timings | None, shadow: list[ShadowScore] | None,
                         degraded: bool) -> list[FraudDecision]:
        times = [i.ts for i in items]
        rows = fraud_feature_rows(times, [i.event.transaction_amount for i in items],
                                  [i.event.country_code for i in items], states)
        x = np.array(rows, dtype=np.float64)
        groups = route.assign([i.event.card_id for i in items])
        t_model = time.perf_counter()
        scores, contributions, served = explain_routed(groups, x)
        t_explain = time.perf_counter()
        factors_of = top_factors(contributions)
        t_done = time.perf_counter()
        if not degraded:
            self._observe_drift(FRAUD_MODEL, FRAUD_FEATURE_NAMES, groups, x, scores)
        m = self._metrics
        if timings is not None:
            timings.update(features=(t_model - start) * 1000, model=(t_explain - t_model) * 1000,
                           explain=(t_done - t_explain) * 1000)
        m.child(m.model_inference_duration, FRAUD_MODEL, "predict").observe(t_explain - t_model)
        m.child(m.model_inference_duration, FRAUD_MODEL, "explain").observe(t_done - t_explain)
        now = self._clock()
        scored_at = datetime.fromtimestamp(now, UTC)
        latency_ms = round((time.perf_counter() - start) * 1000, 3)
        by_model = {id(model): (model.version, *d.thresholds_of(model.metadata.thresholds)) for model, _ in groups}
        served_rows = [by_model[id(model)] for model in served]
        event_ids = [i.event_id for i in items]
        if degraded:
            missing = [list(FRAUD_FEATURE_NAMES[4:]) for _ in items]
        else:
            missing = missing_fraud_feature_rows(times, states, rows)
        out, served_actions = fraud_decisions(
            scores.tolist(), served_rows, factors_of, rows, FRAUD_FEATURE_NAMES, event_ids, times,
            [s.updated_at for s in states], missing,
            [d.decision_id(e, FRAUD_MODEL, v) for e, (v, _, _) in zip(event_ids, served_rows, strict=True)],
            now, scored_at, latency_ms, degraded)
        actions = Counter(zip([v for v, _, _ in served_rows], served_actions, strict=True))
        # a degraded decision lists every stored feature as missing; the metric counts real misses only
        missing_counts: Counter[tuple[str, ...]] = Counter({(): len(items)} if degraded else map(tuple, missing))
        self._record(FRAUD_MODEL, groups, scores, actions, missing_counts)
        self._shadows(FRAUD_MODEL, route, x, items, out, served, scores, served_actions, _fraud_action,
                      scored_at, shadow, degraded)
        return out

    # --------------------------------------------------------------------------------------- personalization
    async def score_session_events(self, items: Sequence[Identified[SessionEvent]], *, apply_updates: bool = False,
                                   allow_degraded: bool = False, timings: Timings | None = None,
                                   shadow: list[ShadowScore] | None = None) -> list[PersonalizationDecision]:
        if not items:
            return []
        start = time.perf_counter()
        route = self._route(PERSONALIZATION_MODEL)

        def decide(part: Sequence[Identified[SessionEvent]], states: Sequence[PersonalizationState],
                   degraded: bool) -> list[PersonalizationDecision]:
            return self._personalization_decisions(part, states, route, start, timings, shadow, degraded)

        updates = Updates(merge_user_batch, session_update, self._store.send_session_events, user_parts)
        return await self._calls.score(items, PERSONALIZATION_MODEL, self._store.send_personalization_fetch,
                                       _personalization_key, PersonalizationState, decide, allow_degraded,
                                       updates if apply_updates else None)

    def _personalization_decisions(self, items: Sequence[Identified[SessionEvent]],
                                   states: Sequence[PersonalizationState], route: ModelRoute, start: float,
                                   timings: Timings | None, shadow: list[ShadowScore] | None,
                                   degraded: bool) -> list[PersonalizationDecision]:
        x = np.array([personalization_features(i.ts, i.event.item_id, i.event.item_category, i.event.item_price,
                                               i.event.session_id, s) for i, s in zip(items, states, strict=True)],
                     dtype=np.float64)
        groups = route.assign([i.event.user_id for i in items])
        t_model = time.perf_counter()
        scores, served = predict_routed(groups, x)
        t_done = time.perf_counter()
        if not degraded:
            self._observe_drift(PERSONALIZATION_MODEL, PERSONALIZATION_FEATURE_NAMES, groups, x, scores)
        if timings is not None:
            timings.update(features=(t_model - start) * 1000, model=(t_done - t_model) * 1000)
        m = self._metrics
        m.child(m.model_inference_duration, PERSONALIZATION_MODEL, "predict").observe(t_done - t_model)
        now = self._clock()
        scored_at = datetime.fromtimestamp(now, UTC)
        latency_ms = round((time.perf_counter() - start) * 1000, 3)
        segments: Counter[tuple[str, str]] = Counter()
        missing_counts: Counter[tuple[str, ...]] = Counter()
        tiers: list[str] = []
        out = []
        for row, (item, state) in enumerate(zip(items, states, strict=True)):
            model = served[row]
            score = float(scores[row])
            relevance = d.relevance(score, _decile_edges(model))
            features = dict(zip(PERSONALIZATION_FEATURE_NAMES, x[row].tolist(), strict=True))
            segment = d.user_segment(features)
            missing = (list(PERSONALIZATION_FEATURE_NAMES[2:]) if degraded
                       else missing_personalization_features(item.ts, item.event.session_id, state))
            out.append(trusted(PersonalizationDecision, dict(
                relevance_score=relevance, conversion_probability=round(score, 6),
                engagement_score=d.engagement(features), user_segment=segment,
                behavioral_signals=d.behavioral_signals(features),
                features_used=len(PERSONALIZATION_FEATURE_NAMES), latency_ms=latency_ms,
                model_version=model.version, event_id=item.event_id,
                decision_id=d.decision_id(item.event_id, PERSONALIZATION_MODEL, model.version),
                event_timestamp=datetime.fromtimestamp(item.ts, UTC), scored_at=scored_at,
                features_missing=missing, degraded=degraded,
            )))
            segments[model.version, segment] += 1
            tiers.append(d.relevance_tier(relevance))
            missing_counts[tuple(missing)] += 1
        self._record(PERSONALIZATION_MODEL, groups, scores, segments, missing_counts)
        self._shadows(PERSONALIZATION_MODEL, route, x, items, out, served, scores, tiers, _relevance_tier,
                      scored_at, shadow, degraded)
        return out

    async def apply_labels(self, updates: Sequence[LabelUpdate]) -> int:
        """Record fraud labels (chargebacks) in the label-based features; returns how many were new."""
        return int(await self._calls.apply(self._store.apply_labels, updates))

    # --------------------------------------------------------------------------------------------- internals
    def _route(self, name: str) -> ModelRoute:
        route = self._registry.route(name)
        if self._drift is not None and self._routes_seen.get(name) is not route:  # a swap: drop retired gauges
            self._routes_seen[name] = route
            self._drift.retain(name, [m.version for _, m in route.models()])
        return route

    def _observe_drift(self, name: str, features: Sequence[str], groups: Groups, x: np.ndarray,
                       scores: np.ndarray) -> None:
        if self._drift is None:
            return
        for model, rows in groups:
            index = rows_of(rows, len(x))
            self._drift.observe(name, model.metadata, features, x[index], scores[index])

    def _shadows(self, name: str, route: ModelRoute, x: np.ndarray, items: Sequence[Identified[Any]],
                 out: Sequence[FraudDecision] | Sequence[PersonalizationDecision], served: Sequence[Model],
                 scores: np.ndarray, actions: Sequence[str], action: Callable[[Model, float], str],
                 scored_at: datetime, shadow: list[ShadowScore] | None, degraded: bool) -> None:
        if not route.shadows:
            return
        drift = self._drift
        features = FRAUD_FEATURE_NAMES if name == FRAUD_MODEL else PERSONALIZATION_FEATURE_NAMES

        def observe(model: Model, shadow_scores: np.ndarray) -> None:
            if drift is not None and not degraded:
                drift.observe(name, model.metadata, features, x, shadow_scores)

        score_shadows(route, x, event_ids=[i.event_id for i in items], event_times=[o.event_timestamp for o in out],
                      served=served, served_scores=scores, served_actions=actions, action=action,
                      scored_at=scored_at, metrics=self._metrics, out=shadow, drift=observe)

    def _record(self, model: str, groups: Groups, scores: np.ndarray, outcomes: Counter[tuple[str, str]],
                missing: Counter[tuple[str, ...]]) -> None:
        """Metrics once per batch, not per event (label lookups are the expensive part)."""
        m = self._metrics
        for served, rows in groups:
            observe_many(m.child(m.prediction_scores, model, served.version), scores[rows_of(rows, len(scores))])
        for (version, outcome), n in outcomes.items():
            m.child(m.decisions, model, version, outcome).inc(n)
        per_feature: Counter[str] = Counter()
        for names, count in missing.items():  # counted per distinct list: most rows miss the same features
            for name in names:
                per_feature[name] += count
        for name, n in per_feature.items():
            m.child(m.features_missing, model, name).inc(n)

def _fraud_key(i: Identified[TransactionEvent]) -> FraudKey:
    return (i.event.card_id, i.event.merchant_id, i.event.mcc_code, i.ts)


def _personalization_key(i: Identified[SessionEvent]) -> PersonalizationKey:
    return (i.event.user_id, i.event.item_id, i.ts)


def _fraud_action(model: Model, score: float) -> str:
    return d.fraud_action(round(score, 6), model.metadata.thresholds)[1]


def _decile_edges(model: Model) -> list[float] | None:
    edges: list[float] | None = model.metadata.raw.get("score_baseline", {}).get("decile_edges")
    return edges


def _relevance_tier(model: Model, score: float) -> str:
    return d.relevance_tier(d.relevance(score, _decile_edges(model)))


