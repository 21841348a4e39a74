from __future__ import annotations

import hashlib

import pytest

from stream_scorer.core import decisions as d


def test_fraud_action_bands() -> None:
    thresholds = {"review": 0.1, "decline": 0.8}
    assert d.fraud_action(0.05, thresholds) == ("low", "approve")
    assert d.fraud_action(0.1, thresholds) == ("medium", "review")
    assert d.fraud_action(0.8, thresholds) == ("high", "decline")


def test_relevance_is_the_rank_among_validation_scores() -> None:
    deciles = [0.01 * (i + 1) for i in range(9)]  # validation scores spread over 0..0.1
    assert d.relevance(0.05, deciles) == pytest.approx(0.5)
    assert d.relevance(0.3, deciles) > 0.9
    assert d.relevance(0.0, deciles) == 0.0
    assert d.relevance(0.42, None) == 0.42


def test_decision_id_is_deterministic_per_event_and_version() -> None:
    assert d.decision_id("tx-1", "fraud", "v1") == d.decision_id("tx-1", "fraud", "v1")
    assert d.decision_id("tx-1", "fraud", "v1") != d.decision_id("tx-1", "fraud", "v2")
    assert d.decision_id("tx-1", "fraud", "v1") != d.decision_id("tx-2", "fraud", "v1")


def test_segments_and_signals_follow_the_features() -> None:
    base = {"user_events_14d": 0.0, "user_purchases_14d": 0.0, "user_avg_purchase_price_14d": 0.0,
            "user_views_14d": 0.0, "session_event_count": 0.0, "session_views": 0.0, "session_carts": 0.0,
            "session_item_views": 0.0, "user_item_views_14d": 0.0, "user_category_share_14d": 0.0,
            "price_ratio_to_user_avg": 1.0, "item_conversion_rate_7d": 0.0}
    assert d.user_segment(base) == "new_visitor"
    buyer = {**base, "user_events_14d": 30.0, "user_purchases_14d": 3.0, "user_avg_purchase_price_14d": 250.0}
    assert d.user_segment(buyer) == "high_value_engaged"
    busy = {**base, "session_event_count": 6.0, "session_views": 4.0, "session_carts": 1.0}
    assert {"high_engagement_session", "multi_page_session", "cart_activity"} <= set(d.behavioral_signals(busy))
    assert d.engagement(busy) > d.engagement(base)


def test_decision_id_stays_the_keyed_blake2b_of_model_version_and_event() -> None:
    """Ids already published must keep matching redeliveries: the hash is fixed, however it is computed."""
    h = hashlib.blake2b(b"fraud|v1|tx-1", digest_size=16, key=b"stream-scorer/decision/v1").hexdigest()
    assert d.decision_id("tx-1", "fraud", "v1") == f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
