

def test_trusted_construction_equals_model_construct() -> None:
    from datetime import UTC, datetime

    from schemas.decisions import FraudDecision, trusted

    now = datetime.now(UTC)
    values = dict(fraud_score=0.91, risk_level="high", confidence=0.91, recommended_action="decline",
                  explanation="x", top_risk_factors=["amount"], features_used=22, latency_ms=1.5, model_version="v3",
                  feature_freshness_sec=None, transaction_id="t1", decision_id="d1", event_timestamp=now,
                  scored_at=now, features_missing=[], degraded=False)
    fast, slow = trusted(FraudDecision, dict(values)), FraudDecision.model_construct(**values)
    assert fast == slow
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_fields_set == slow.model_fields_set
    partial = {k: v for k, v in values.items() if k != "degraded"}  # a default left out: model_construct fills it
    assert trusted(FraudDecision, partial).degraded is False
