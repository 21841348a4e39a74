"""Admin endpoints: key required, routing edits applied at once, refused artifacts answered 422 while serving."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from stream_scorer.config import ApiSettings, Settings
from tests.http_api.harness import in_process_api, metric_value
from tests.support.artifacts import write_xgboost_artifact

KEY = "k3y-for-the-admin-endpoints-0123"
AUTH = {"X-Admin-Key": KEY}
TX = {"card_id": "card_00000042", "transaction_amount": 150.0}


@pytest.fixture
def admin_settings(settings: Settings, tmp_path: Path) -> Settings:
    model_dir = tmp_path / "models"
    for version, seed in (("v1", 0), ("v2", 1), ("v3", 2)):
        write_xgboost_artifact(model_dir, "fraud", version, seed=seed)
    write_xgboost_artifact(model_dir, "personalization")
    return settings.model_copy(update={"model_dir": model_dir, "model_reload_interval": 0.0,
                                       "api": ApiSettings(admin_key=SecretStr(KEY))})


async def _version(client: httpx.AsyncClient) -> str:
    response = await client.post("/score/fraud", json=TX)
    assert response.status_code == 200, response.text
    return str(response.json()["model_version"])


async def test_admin_needs_the_key(admin_settings: Settings) -> None:
    async with in_process_api(admin_settings) as (_, client):
        assert (await client.post("/models/fraud/reload")).status_code == 401
        wrong = await client.post("/models/fraud/reload", headers={"X-Admin-Key": "x" * 32})
        assert wrong.status_code == 401 and wrong.json()["error"] == "admin_unauthorized"
        bearer = await client.post("/models/fraud/reload", headers={"Authorization": f"Bearer {KEY}"})
        assert bearer.status_code == 200
    disabled = admin_settings.model_copy(update={"api": ApiSettings()})
    async with in_process_api(disabled) as (_, client):
        response = await client.post("/models/fraud/reload", headers=AUTH)
        assert response.status_code == 403 and "API_ADMIN_KEY" in response.json()["message"]


def test_placeholder_admin_keys_are_rejected() -> None:
    for bad in ("changeme", "short-key"):
        with pytest.raises(ValueError, match="admin_key"):
            ApiSettings(admin_key=SecretStr(bad))


async def test_promote_traffic_shadow_rollback_take_effect_at_once(admin_settings: Settings) -> None:
    async with in_process_api(admin_settings) as (_, client):
        assert await _version(client) == "v3"
        promoted = await client.post("/models/fraud/promote", json={"version": "v1"}, headers=AUTH)
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["serving"]["champion"] == "v1"
        assert await _version(client) == "v1"
        traffic = await client.post("/models/fraud/traffic", content=b'{"version": "v2", "share": 0.5}',
                                    headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"})
        assert traffic.json()["serving"]["challenger"] == {"version": "v2", "share": 0.5}
        versions = set()
        for i in range(40):
            r = await client.post("/score/fraud", json={**TX, "card_id": f"card_{i:08d}"})
            versions.add(r.json()["model_version"])
        assert versions == {"v1", "v2"}
        shadow = await client.post("/models/fraud/shadow", json={"versions": ["v3"]}, headers=AUTH)
        assert shadow.json()["serving"]["shadows"] == ["v3"]
        models = (await client.get("/models")).json()
        assert {(m["role"], m["version"]) for m in models["models"] if m["name"] == "fraud"} == {
            ("champion", "v1"), ("challenger", "v2"), ("shadow", "v3")}
        for _ in range(3):
            await _version(client)
        metrics = (await client.get("/metrics")).text
        assert metric_value(metrics, "shadow_predictions_total", model="fraud", version="v3", agreement="agree") \
            + metric_value(metrics, "shadow_predictions_total", model="fraud", version="v3",
                           agreement="disagree") == 3
        rolled = await client.post("/models/fraud/rollback", headers=AUTH)
        assert rolled.json()["serving"]["champion"] == "v3"
        status = (await client.get("/models/fraud")).json()
        assert [v["version"] for v in status["versions"]] == ["v1", "v2", "v3"]
        assert status["routing"]["previous"] == []
        again = await client.post("/models/fraud/rollback", headers=AUTH)
        assert again.status_code == 409 and "roll back" in again.json()["message"]


async def test_bad_artifacts_are_refused_and_serving_continues(admin_settings: Settings) -> None:
    model_dir = admin_settings.model_dir
    broken = write_xgboost_artifact(model_dir, "fraud", "v4")
    (broken / "model.json").write_text("garbage")
    renamed = write_xgboost_artifact(model_dir, "fraud", "v5")
    meta = json.loads((renamed / "metadata.json").read_text())
    meta["feature_names"] = list(reversed(meta["feature_names"]))
    (renamed / "metadata.json").write_text(json.dumps(meta))
    async with in_process_api(admin_settings) as (_, client):
        # at start the latest (v5) is refused: no route for fraud yet would mean 503, so pin v3 first
        assert (await client.get("/models")).json()["errors"]["fraud"]
        ok = await client.post("/models/fraud/promote", json={"version": "v3"}, headers=AUTH)
        assert ok.status_code == 200 and await _version(client) == "v3"
        for version, reason in (("v4", "not an XGBoost model"), ("v5", "same names, different order"),
                                ("v9", "no such model version")):
            refused = await client.post("/models/fraud/promote", json={"version": version}, headers=AUTH)
            assert refused.status_code == 422, refused.text
            body = refused.json()
            assert body["error"] == "model_refused" and reason in body["message"] and version in body["message"]
            assert await _version(client) == "v3"
        unknown = await client.post("/models/nope/reload", headers=AUTH)
        assert unknown.status_code == 404
        metrics = (await client.get("/metrics")).text
        assert metric_value(metrics, "inference_errors_total", type="unknown_model",
                            endpoint="/models/{name}/reload") == 1
        assert "/models/nope" not in metrics  # labels are route templates: random paths cannot grow the series
        bad_share = await client.post("/models/fraud/traffic", json={"version": "v1", "share": 2}, headers=AUTH)
        assert bad_share.status_code == 422 and bad_share.json()["field"] == "share"
