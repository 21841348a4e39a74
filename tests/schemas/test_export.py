from __future__ import annotations

from pathlib import Path

import orjson

from schemas.export import asyncapi, json_schemas
from stream_scorer.cli import main
from stream_scorer.config import TopicSettings


def test_json_schemas_name_the_seed_fields() -> None:
    schemas = json_schemas()
    assert set(schemas["TransactionEvent"]["required"]) == {"card_id", "transaction_amount"}
    decision = schemas["FraudDecision"]["properties"]
    for field in ("fraud_score", "risk_level", "confidence", "recommended_action", "explanation",
                  "top_risk_factors", "features_used", "latency_ms", "model_version", "feature_freshness_sec"):
        assert field in decision
    assert decision["recommended_action"]["enum"] == ["approve", "review", "decline"]


def test_asyncapi_lists_every_topic_with_its_payload() -> None:
    topics = TopicSettings().model_dump(exclude={"input_partitions"})
    doc = asyncapi(topics, "127.0.0.1:9092")
    assert {c["address"] for c in doc["channels"].values()} >= {"transactions", "fraud-decisions", "scoring-dlq"}
    ref = doc["channels"]["transactions"]["messages"]["record"]["payload"]["$ref"]
    assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]


def test_cli_writes_the_files(tmp_path: Path) -> None:
    assert main(["schemas", "--out", str(tmp_path)]) == 0
    assert orjson.loads((tmp_path / "asyncapi.json").read_bytes())["asyncapi"] == "3.0.0"
    assert (tmp_path / "FraudDecision.schema.json").exists()
