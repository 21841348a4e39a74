"""Routes from routing files: champion, challenger share, shadows; refused artifacts; the watcher's hot swap."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stream_scorer.bootstrap import MODEL_FEATURES
from stream_scorer.metrics import Metrics
from stream_scorer.models import admin
from stream_scorer.models.base import ModelLoadError
from stream_scorer.models.registry import ModelRegistry, traffic_bucket
from stream_scorer.models.routing import Challenger, read_routing
from stream_scorer.models.watcher import ModelWatcher
from tests.support.artifacts import add_onnx_export, write_xgboost_artifact


@pytest.fixture
def versions_dir(tmp_path: Path) -> Path:
    for version, seed in (("v1", 0), ("v2", 1), ("v3", 2)):
        write_xgboost_artifact(tmp_path, "fraud", version, seed=seed)
    write_xgboost_artifact(tmp_path, "personalization")
    return tmp_path


def _registry(model_dir: Path, metrics: Metrics | None = None) -> ModelRegistry:
    return ModelRegistry(model_dir, expected_features=MODEL_FEATURES, metrics=metrics)


def _corrupt(model_dir: Path, version: str) -> None:
    write_xgboost_artifact(model_dir, "fraud", version)
    (model_dir / "fraud" / version / "model.json").write_text("{not a model")


def _renamed_features(model_dir: Path, version: str) -> None:
    folder = write_xgboost_artifact(model_dir, "fraud", version)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["feature_names"][0] = "amount_usd"
    (folder / "metadata.json").write_text(json.dumps(meta))


def test_without_routing_file_the_latest_version_serves(versions_dir: Path) -> None:
    registry = _registry(versions_dir)
    assert registry.refresh("fraud") is True
    assert registry.get("fraud").version == "v3"
    assert registry.refresh("fraud") is False  # nothing changed on disk: nothing reloaded


def test_promote_rollback_and_latest(versions_dir: Path) -> None:
    registry = _registry(versions_dir)
    registry.refresh("fraud")
    admin.promote(registry, "fraud", "v1")
    registry.refresh("fraud")
    assert registry.get("fraud").version == "v1"
    write_xgboost_artifact(versions_dir, "fraud", "v4", seed=4)  # a new version does not displace a pinned one
    registry.refresh("fraud")
    assert registry.get("fraud").version == "v1"
    admin.promote(registry, "fraud", "v2")
    admin.rollback(registry, "fraud")
    registry.refresh("fraud")
    assert registry.get("fraud").version == "v1"
    admin.rollback(registry, "fraud")  # back to the latest that served before the first promote
    registry.refresh("fraud")
    assert registry.get("fraud").version == "v3"
    routing = read_routing(versions_dir, "fraud")
    assert [h["action"] for h in routing.history] == ["promote v1", "promote v2", "rollback", "rollback"]


@pytest.mark.parametrize("breaking", [_corrupt, _renamed_features])
def test_a_bad_artifact_is_refused_and_the_old_route_keeps_serving(versions_dir: Path, breaking: object) -> None:
    metrics = Metrics()
    registry = _registry(versions_dir, metrics)
    registry.refresh("fraud")
    breaking(versions_dir, "v5")  # type: ignore[operator]
    with pytest.raises(Exception) as refused:  # the admin edit is refused before the routing file changes
        admin.promote(registry, "fraud", "v5")
    assert "v5" in str(refused.value)
    assert read_routing(versions_dir, "fraud").champion is None
    # without a routing file the latest (broken) version is what a refresh would load: refused, v3 serves
    with pytest.raises(ModelLoadError) as exc:
        registry.refresh("fraud")
    message = str(exc.value)
    assert "v5" in message and ("feature names" in message or "not an XGBoost model" in message)
    assert registry.get("fraud").version == "v3"
    assert registry.errors["fraud"] == message
    assert metrics.registry.get_sample_value("model_reloads_total", {"model": "fraud", "outcome": "refused"}) == 1
    shutil.rmtree(versions_dir / "fraud" / "v5")
    registry.refresh("fraud")
    assert "fraud" not in registry.errors


def test_onnx_export_is_checked_against_the_native_model(versions_dir: Path) -> None:
    fraud = versions_dir / "fraud"
    add_onnx_export(fraud / "v1", fraud / "v1")
    add_onnx_export(fraud / "v2", fraud / "v3")  # a stale export from another model
    registry = ModelRegistry(versions_dir, expected_features=MODEL_FEATURES, use_onnx=True)
    assert registry.check("fraud", "v1").runtime == "onnx"
    with pytest.raises(ModelLoadError, match="ONNX export disagrees with the native model"):
        registry.check("fraud", "v2")


def test_challenger_share_is_stable_per_entity_and_about_right(versions_dir: Path) -> None:
    registry = _registry(versions_dir)
    admin.set_traffic(registry, "fraud", "v1", 0.1)
    registry.refresh("fraud")
    route = registry.route("fraud")
    cards = [f"card_{i:08d}" for i in range(20_000)]
    groups = route.assign(cards)
    assert [m.version for m, _ in groups] == ["v3", "v1"]
    challenger_rows = groups[1][1]
    assert challenger_rows is not None
    share = len(challenger_rows) / len(cards)
    assert 0.09 < share < 0.11
    again = route.assign(list(reversed(cards)))[1][1]
    assert again is not None
    assert {cards[-1 - r] for r in again} == {cards[r] for r in challenger_rows}
    assert traffic_bucket("fraud", "card_00000001") == traffic_bucket("fraud", "card_00000001")
    admin.set_traffic(registry, "fraud", "v1", 0.0)
    registry.refresh("fraud")
    assert registry.route("fraud").challenger is None


def test_shadows_and_served_gauge(versions_dir: Path) -> None:
    metrics = Metrics()
    registry = _registry(versions_dir, metrics)
    admin.set_shadows(registry, "fraud", ["v1", "v2"])
    admin.set_traffic(registry, "fraud", "v2", 0.25)
    registry.refresh("fraud")
    route = registry.route("fraud")
    assert [(role, m.version) for role, m in route.models()] == [
        ("champion", "v3"), ("challenger", "v2"), ("shadow", "v1"), ("shadow", "v2")]
    value = metrics.registry.get_sample_value
    assert value("model_served", {"model": "fraud", "role": "challenger", "version": "v2"}) == 0.25
    assert value("model_served", {"model": "fraud", "role": "champion", "version": "v3"}) == 0.75
    admin.set_shadows(registry, "fraud", [])
    registry.refresh("fraud")
    assert value("model_served", {"model": "fraud", "role": "shadow", "version": "v1"}) is None


async def test_watcher_swaps_without_restart_and_in_flight_work_keeps_its_route(versions_dir: Path) -> None:
    registry = _registry(versions_dir)
    registry.refresh("fraud")
    held = registry.route("fraud")  # what an in-flight batch holds
    x = np.zeros((3, len(MODEL_FEATURES["fraud"])))
    async with ModelWatcher(registry, ["fraud"], interval=0.05):
        admin.promote(registry, "fraud", "v1")
        for _ in range(100):
            if registry.get("fraud").version == "v1":
                break
            await asyncio.sleep(0.05)
        assert registry.get("fraud").version == "v1"
        assert held.champion.version == "v3"
        assert held.champion.predict(x).shape == (3,)  # the swapped-out model still scores what it started


def test_a_version_whose_metadata_lands_late_is_picked_up(versions_dir: Path) -> None:
    registry = _registry(versions_dir)
    registry.refresh("fraud")
    staged = write_xgboost_artifact(versions_dir / "staging", "fraud", "v4", seed=4)
    target = versions_dir / "fraud" / "v4"
    target.mkdir()
    shutil.copy(staged / "model.json", target / "model.json")  # a copy in progress: no metadata yet
    assert registry.changed_on_disk("fraud")
    with pytest.raises(ModelLoadError, match="no such model version"):
        registry.refresh("fraud")
    assert registry.get("fraud").version == "v3"
    shutil.copy(staged / "metadata.json", target / "metadata.json")
    assert registry.changed_on_disk("fraud")
    assert registry.refresh("fraud") is True
    assert registry.get("fraud").version == "v4" and "fraud" not in registry.errors


def test_a_model_file_replaced_in_place_is_reloaded(versions_dir: Path) -> None:
    registry = _registry(versions_dir)
    registry.refresh("fraud")
    x = np.random.default_rng(2).gamma(1.5, 2.0, size=(50, len(MODEL_FEATURES["fraud"])))
    before = registry.get("fraud").predict(x)
    other = write_xgboost_artifact(versions_dir / "other", "fraud", "v3", seed=9)
    shutil.copy(other / "model.json", versions_dir / "fraud" / "v3" / "model.json")
    assert registry.changed_on_disk("fraud")
    assert registry.refresh("fraud") is True
    assert not np.array_equal(registry.get("fraud").predict(x), before)


def test_traffic_pins_the_champion_and_a_share_alone_changes_the_challengers(versions_dir: Path) -> None:
    registry = _registry(versions_dir)
    with pytest.raises(Exception, match="is the champion"):
        admin.set_traffic(registry, "fraud", "v3", 0.1)  # v3 is the latest: it serves as champion
    admin.set_traffic(registry, "fraud", "v2", 0.1)
    routing = read_routing(versions_dir, "fraud")
    assert routing.champion == "v3"  # pinned: a newer training run does not replace the control side
    write_xgboost_artifact(versions_dir, "fraud", "v4", seed=4)
    registry.refresh("fraud")
    assert registry.route("fraud").champion.version == "v3"
    admin.set_traffic(registry, "fraud", None, 0.3)
    assert read_routing(versions_dir, "fraud").challenger == Challenger("v2", 0.3)


def test_routing_file_is_readable_by_others_and_an_unreadable_one_is_a_clear_refusal(versions_dir: Path) -> None:
    registry = _registry(versions_dir)
    registry.refresh("fraud")
    admin.set_shadows(registry, "fraud", ["v1"])
    path = versions_dir / "fraud" / "routing.json"
    assert path.stat().st_mode & 0o777 == 0o644
    path.write_bytes(b'{"champion": "v\\xe9"')  # a hand edit gone wrong
    with pytest.raises(ModelLoadError, match="cannot be read"):
        registry.refresh("fraud")
    assert registry.get("fraud").version == "v3"  # still serving


async def test_a_model_missing_at_start_is_retried_without_any_file_change(versions_dir: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _registry(versions_dir)
    real_folder = registry.folder
    outage = {"on": True}

    def folder(name: str, version: str) -> Path:  # e.g. an MLflow server that is down at start
        if outage["on"]:
            raise ModelLoadError(f"{name}/{version}: tracking server unreachable")
        return real_folder(name, version)

    monkeypatch.setattr(registry, "folder", folder)
    with pytest.raises(ModelLoadError):
        registry.refresh("fraud")
    assert "fraud" not in registry.loaded()
    async with ModelWatcher(registry, ["fraud"], interval=0.02, missing_retry_sec=0.05):
        outage["on"] = False  # the files never changed: only the retry can load it
        for _ in range(100):
            if "fraud" in registry.loaded():
                break
            await asyncio.sleep(0.02)
    assert registry.get("fraud").version == "v3"
