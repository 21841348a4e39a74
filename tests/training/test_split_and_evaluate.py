from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from training.evaluate import (
    at_threshold,
    card_precision_at_k,
    f1_optimal_threshold,
    ndcg_at_k,
    reliability,
    scenario_recall,
    thresholds_at_fpr,
)
from training.split import SplitError, derive_split, parse_date

END = datetime(2024, 3, 1, 12, tzinfo=UTC)


def test_default_fraud_split_lays_periods_back_from_the_end() -> None:
    split = derive_split("fraud", END - timedelta(days=70), END)
    d = split.as_dict()
    assert (d["warmup_days"], d["train_days"], d["validation_days"], d["delay_days"], d["test_days"]) == (
        35.0, 21.0, 7.0, 7.0, 7.0)
    assert split.test_end == END and split.label_cutoff == split.test_start
    assert not split.notes


def test_explicit_dates_and_lengths() -> None:
    split = derive_split("fraud", END - timedelta(days=70), END, train_start=parse_date("2024-01-10"),
                         train_days=7, delay_days=7, test_days=7, validation_days=2)
    assert split.train_start == datetime(2024, 1, 10, tzinfo=UTC)
    assert split.validation_start == datetime(2024, 1, 15, tzinfo=UTC)
    assert split.test_start == datetime(2024, 1, 24, tzinfo=UTC)
    assert split.test_end == datetime(2024, 1, 31, tzinfo=UTC)
    assert split.notes  # less than 35 days of warm-up


def test_short_history_shrinks_periods_with_a_note() -> None:
    split = derive_split("fraud", END - timedelta(days=35), END)
    assert split.notes and "less than the default" in split.notes[0]
    assert split.train_start >= END - timedelta(days=35)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"train_start": datetime(2023, 1, 1, tzinfo=UTC)}, "before the history"),
    ({"train_start": datetime(2024, 2, 20, tzinfo=UTC)}, "after the history"),
    ({"train_days": 1}, "train-days >= 2"),
    ({"validation_days": 30}, "validation-days"),
])
def test_impossible_splits_are_explained(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SplitError, match=message):
        derive_split("fraud", END - timedelta(days=70), END, **kwargs)  # type: ignore[arg-type]


def test_parse_date_rejects_garbage() -> None:
    with pytest.raises(SplitError, match="expected a date"):
        parse_date("last tuesday")


def test_thresholds_hit_their_false_positive_rates() -> None:
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.random(10_000) * 0.5, 0.5 + rng.random(100) * 0.5])
    labels = np.concatenate([np.zeros(10_000, dtype=int), np.ones(100, dtype=int)])
    t = thresholds_at_fpr(scores, labels, {"review": 0.02, "decline": 0.002})
    negatives = scores[labels == 0]
    assert np.mean(negatives >= t["review"]) <= 0.02 < np.mean(negatives >= t["review"] * 0.99)
    assert np.mean(negatives >= t["decline"]) <= 0.002
    assert t["review"] < t["decline"]
    metrics = at_threshold(labels, scores, t["review"], "review")
    assert metrics["recall_at_review"] == 1.0 and metrics["fpr_at_review"] <= 0.02


def test_f1_threshold_separates_a_clean_split() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    labels = np.array([0, 0, 0, 1, 1])
    assert f1_optimal_threshold(scores, labels) == 0.8


def test_card_precision_skips_cards_already_caught() -> None:
    day0 = pd.Timestamp("2024-01-01", tz="UTC")
    rows = [  # card, day, score, label
        ("a", 0, 0.9, 1), ("b", 0, 0.8, 0), ("c", 0, 0.1, 1),
        ("a", 1, 0.95, 1), ("c", 1, 0.7, 1), ("b", 1, 0.6, 0),
    ]
    frame = pd.DataFrame([{"card_id": c, "timestamp": day0 + pd.Timedelta(days=d, hours=3), "score": s, "label": y}
                          for c, d, s, y in rows])
    result = card_precision_at_k(frame, day0, k=2)
    # day 0: top-2 = a (fraud), b -> 1/2; day 1: a already caught, top-2 = c (fraud), b -> 1/2
    assert result.per_day["frauds_in_top_k"].tolist() == [1, 1]
    assert result.per_day["cards_ranked"].tolist() == [3, 2]
    assert result.mean == 0.5


def test_ndcg_and_scenario_recall() -> None:
    frame = pd.DataFrame({"session_id": ["s1", "s1", "s1", "s2", "s2", "s3"],
                          "label": [0, 1, 0, 1, 0, 0], "score": [0.9, 0.5, 0.1, 0.8, 0.2, 0.3]})
    # s1: relevant at rank 2 -> 1/log2(3); s2: relevant first -> 1; s3 has no relevant row (ignored)
    assert ndcg_at_k(frame, k=10) == pytest.approx((1 / np.log2(3) + 1.0) / 2)
    frauds = pd.DataFrame({"label": [1, 1, 1, 0], "scenario": ["x", "x", "y", "genuine"],
                           "score": [0.9, 0.1, 0.6, 0.99]})
    table = scenario_recall(frauds, {"review": 0.5})
    assert table.set_index("scenario")["recall_at_review"].to_dict() == {"x": 0.5, "y": 1.0}


def test_reliability_bins_cover_all_rows() -> None:
    rng = np.random.default_rng(1)
    scores = rng.beta(0.5, 20, size=5_000)
    labels = (rng.random(5_000) < scores).astype(int)
    table = reliability(labels, scores)
    assert table["rows"].sum() == 5_000
    assert (table["score_from"] < table["score_to"]).all()


def test_a_history_a_little_short_gives_up_warm_up_first() -> None:
    split = derive_split("fraud", END - timedelta(days=60), END)
    d = split.as_dict()
    assert (d["train_days"], d["delay_days"], d["test_days"]) == (21.0, 7.0, 7.0)
    assert d["warmup_days"] == 25.0
