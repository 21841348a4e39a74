

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


def test_to_json_writes_the_bytes_pydantic_writes() -> None:
    """Random decisions, personalization scores and shadow scores: every float, timestamp (whole seconds, micro-
    seconds, before 1970), null and non-ASCII text as pydantic renders it."""
    import random
    from datetime import UTC, datetime

    from schemas.decisions import FraudDecision, PersonalizationDecision, ShadowScore, to_json, trusted

    rng = random.Random(5)

    def number() -> float:
        return rng.choice([rng.random(), round(rng.random(), 6), 0.0, 1.0, 1e-7, 0.1, 2 / 3, rng.uniform(0, 1e6)])

    def moment() -> datetime:
        ts = rng.choice([rng.uniform(-1e9, 2e9), float(rng.randrange(2 * 10**9)), 1.7e9 + rng.randrange(10**6) / 1e6])
        return datetime.fromtimestamp(ts, UTC)

    for _ in range(3000):
        fraud = trusted(FraudDecision, dict(
            fraud_score=number(), risk_level="high", confidence=number(), recommended_action="decline",
            explanation=rng.choice(["plain", "9,876.54 spent; \"quoted\" \u00e9\u2028\n\t", ""]),
            top_risk_factors=rng.choice([[], ["amount", "card_tx_count_1h"]]), features_used=22,
            latency_ms=number(), model_version="v3", feature_freshness_sec=rng.choice([None, number()]),
            transaction_id="t-\u00fc", decision_id="d1", event_timestamp=moment(), scored_at=moment(),
            features_missing=rng.choice([[], ["mcc_fraud_rate_28d"]]), degraded=rng.random() < 0.5))
        personalization = trusted(PersonalizationDecision, dict(
            relevance_score=number(), conversion_probability=number(), engagement_score=number(),
            user_segment="frequent_buyer", behavioral_signals=["cart_activity"], features_used=24, latency_ms=number(),
            model_version="v1", event_id="e1", decision_id="d2", event_timestamp=moment(), scored_at=moment(),
            features_missing=[], degraded=False))
        shadow = ShadowScore(model="fraud", event_id="t1", event_timestamp=moment(), served_version="v1",
                             served_score=rng.random(), served_action="approve", shadow_version="v2",
                             shadow_score=rng.random(), shadow_action="review", scored_at=moment())
        for model in (fraud, personalization, shadow):
            assert to_json(model) == model.model_dump_json().encode()
