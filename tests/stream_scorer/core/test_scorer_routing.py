"""The scorer with a route: challenger rows by stable card/user hash, shadows that never change a decision."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from schemas.decisions import TIMING_FIELDS, ShadowScore
from stream_scorer.bootstrap import MODEL_FEATURES
from stream_scorer.core.identified import identify_session_event, identify_transaction
from stream_scorer.core.scorer import Scorer
from stream_scorer.metrics import Metrics
from stream_scorer.models import admin
from stream_scorer.models.registry import ModelRegistry
from tests.support.artifacts import write_xgboost_artifact
from tests.support.events import session_events, transaction_events
from tests.support.fakes import InMemoryFeatureStore

DAY = 86400.0


@pytest.fixture
def versions_dir(tmp_path: Path) -> Path:
    for version, seed in (("v1", 0), ("v2", 1)):
        write_xgboost_artifact(tmp_path, "fraud", version, seed=seed)
        write_xgboost_artifact(tmp_path, "personalization", version, seed=seed)
    return tmp_path


def _scorer(model_dir: Path) -> tuple[Scorer, ModelRegistry, Metrics]:
    metrics = Metrics()
    registry = ModelRegistry(model_dir, expected_features=MODEL_FEATURES, metrics=metrics)
    for name in MODEL_FEATURES:
        registry.refresh(name)
    return Scorer(InMemoryFeatureStore(), registry, metrics), registry, metrics


def _tx(n: int, cards: int) -> list:  # type: ignore[type-arg]
    events = transaction_events(n, start=time.time() - DAY, span_sec=3600, cards=cards)
    return [identify_transaction(e, "unused", 0.0) for e in events]


def _plain(decision: object) -> dict[str, object]:
    return {k: v for k, v in decision.model_dump().items() if k not in TIMING_FIELDS}  # type: ignore[attr-defined]


async def test_a_challenger_serves_its_share_of_cards_every_time(versions_dir: Path) -> None:
    scorer, registry, metrics = _scorer(versions_dir)
    admin.set_traffic(registry, "fraud", "v1", 0.1)
    registry.refresh("fraud")
    items = _tx(4000, cards=2000)
    decisions = await scorer.score_transactions(items)
    version_of_card: dict[str, set[str]] = {}
    for item, decision in zip(items, decisions, strict=True):
        version_of_card.setdefault(item.event.card_id, set()).add(decision.model_version)
    assert all(len(v) == 1 for v in version_of_card.values())  # a card never flips between models
    challenger_cards = sum(1 for v in version_of_card.values() if v == {"v1"})
    assert 0.07 < challenger_cards / len(version_of_card) < 0.13
    # each row was scored by the model its version names: same as scoring it alone with that model as champion
    solo, solo_registry, _ = _scorer(versions_dir)
    admin.promote(solo_registry, "fraud", "v1")
    solo_registry.refresh("fraud")
    challenger_items = [i for i, d in zip(items, decisions, strict=True) if d.model_version == "v1"][:50]
    alone = await solo.score_transactions(challenger_items)
    by_id = {d.transaction_id: d for d in decisions}
    assert [_plain(d) for d in alone] == [_plain(by_id[i.event_id]) for i in challenger_items]
    decided = metrics.registry.get_sample_value
    assert decided("prediction_scores_count", {"model": "fraud", "version": "v1"}) == sum(
        1 for d in decisions if d.model_version == "v1")


async def test_shadows_score_every_event_without_changing_decisions(versions_dir: Path) -> None:
    plain_scorer, _, _ = _scorer(versions_dir)
    scorer, registry, metrics = _scorer(versions_dir)
    admin.set_shadows(registry, "fraud", ["v1"])
    registry.refresh("fraud")
    items = _tx(300, cards=30)
    shadow: list[ShadowScore] = []
    with_shadow = await scorer.score_transactions(items, shadow=shadow)
    without = await plain_scorer.score_transactions(items)
    assert [_plain(d) for d in with_shadow] == [_plain(d) for d in without]
    assert [s.event_id for s in shadow] == [i.event_id for i in items]
    assert {(s.served_version, s.shadow_version) for s in shadow} == {("v2", "v1")}
    assert [s.served_score for s in shadow] == [d.fraud_score for d in with_shadow]
    assert [s.served_action for s in shadow] == [d.recommended_action for d in with_shadow]
    assert any(s.shadow_score != s.served_score for s in shadow)  # another model: other scores
    value = metrics.registry.get_sample_value
    agree = value("shadow_predictions_total", {"model": "fraud", "version": "v1", "agreement": "agree"}) or 0
    disagree = value("shadow_predictions_total", {"model": "fraud", "version": "v1", "agreement": "disagree"}) or 0
    assert agree + disagree == 300
    assert agree == sum(1 for s in shadow if s.shadow_action == s.served_action)
    assert value("prediction_scores_count", {"model": "fraud", "version": "v1"}) == 300


async def test_personalization_routes_by_user_and_shadows_by_relevance_tier(versions_dir: Path) -> None:
    scorer, registry, _ = _scorer(versions_dir)
    admin.set_traffic(registry, "personalization", "v1", 0.5)
    admin.set_shadows(registry, "personalization", ["v1"])
    registry.refresh("personalization")
    events = session_events(400, start=time.time() - DAY, span_sec=3600, users=100)
    items = [identify_session_event(e, "unused", 0.0) for e in events]
    shadow: list[ShadowScore] = []
    decisions = await scorer.score_session_events(items, shadow=shadow)
    versions: dict[str, set[str]] = {}
    for item, decision in zip(items, decisions, strict=True):
        versions.setdefault(item.event.user_id, set()).add(decision.model_version)
    assert all(len(v) == 1 for v in versions.values())
    assert {next(iter(v)) for v in versions.values()} == {"v1", "v2"}
    assert {s.served_action for s in shadow} <= {"high", "medium", "low"}
    # where v1 served, its shadow self agrees exactly
    same = [s for s in shadow if s.served_version == "v1"]
    assert same and all(s.shadow_score == s.served_score and s.shadow_action == s.served_action for s in same)


async def test_a_failing_shadow_never_costs_a_decision(versions_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scorer, registry, metrics = _scorer(versions_dir)
    admin.set_shadows(registry, "fraud", ["v1"])
    registry.refresh("fraud")
    [shadow_model] = registry.route("fraud").shadows

    def broken(x: object) -> object:
        raise RuntimeError("shadow exploded")

    monkeypatch.setattr(shadow_model, "predict", broken)
    shadow: list[ShadowScore] = []
    decisions = await scorer.score_transactions(_tx(20, cards=5), shadow=shadow)
    assert len(decisions) == 20 and not shadow
    errors = metrics.registry.get_sample_value("shadow_predictions_total",
                                               {"model": "fraud", "version": "v1", "agreement": "error"})
    assert errors == 20
