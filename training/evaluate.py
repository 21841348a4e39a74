"""Test-period metrics and the decision thresholds derived on the validation period."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    precision_recall_curve,
    roc_auc_score,
)

CARD_PRECISION_K = 100
NDCG_K = 10


# ------------------------------------------------------------------------------------------------- thresholds
def thresholds_at_fpr(scores: np.ndarray, labels: np.ndarray, target_fpr: dict[str, float]) -> dict[str, float]:
    """For each name, the lowest threshold at which at most ``fpr`` of the negatives score ``>=`` it."""
    negatives = np.sort(scores[labels == 0])[::-1]
    if len(negatives) == 0:
        raise ValueError("the validation period has no negative example")
    out: dict[str, float] = {}
    for name, fpr in target_fpr.items():
        allowed = int(np.floor(fpr * len(negatives)))
        if allowed >= len(negatives):
            out[name] = float(negatives[-1])
        else:
            out[name] = float(np.nextafter(negatives[allowed], np.inf))
    return out


def f1_optimal_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    return float(thresholds[int(np.argmax(f1[:-1]))])


# --------------------------------------------------------------------------------------------------- metrics
def ranking_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    both = len(np.unique(labels)) == 2
    return {
        "auc_roc": float(roc_auc_score(labels, scores)) if both else float("nan"),
        "average_precision": float(average_precision_score(labels, scores)) if both else float("nan"),
        "brier": float(brier_score_loss(labels, scores)),
        "expected_calibration_error": expected_calibration_error(labels, scores),
        "positive_rate": float(np.mean(labels)),
        "mean_score": float(np.mean(scores)),
        "rows": float(len(labels)),
        "positives": float(np.sum(labels)),
    }


def at_threshold(labels: np.ndarray, scores: np.ndarray, threshold: float, name: str) -> dict[str, float]:
    flagged = scores >= threshold
    tp = float(np.sum(flagged & (labels == 1)))
    negatives = float(np.sum(labels == 0))
    return {
        f"precision_at_{name}": tp / float(np.sum(flagged)) if flagged.any() else float("nan"),
        f"recall_at_{name}": tp / float(np.sum(labels)) if labels.any() else float("nan"),
        f"fpr_at_{name}": float(np.sum(flagged & (labels == 0))) / negatives if negatives else float("nan"),
        f"alert_rate_at_{name}": float(np.mean(flagged)),
    }


RELIABILITY_EDGES = np.concatenate([[0.0], np.geomspace(1e-3, 1.0, 13)])
"""Log-spaced score bins: rare positives put nearly all rows at low scores, where equal-width bins see nothing."""


def reliability(labels: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """Per non-empty score bin: its range, rows, mean predicted probability and observed positive rate."""
    bins = np.clip(np.searchsorted(RELIABILITY_EDGES, scores, side="right") - 1, 0, len(RELIABILITY_EDGES) - 2)
    frame = pd.DataFrame({"label": labels, "score": scores, "bin": bins})
    out = frame.groupby("bin").agg(rows=("label", "size"), mean_score=("score", "mean"),
                                   positive_rate=("label", "mean")).reset_index()
    out.insert(1, "score_from", RELIABILITY_EDGES[out["bin"].to_numpy()])
    out.insert(2, "score_to", RELIABILITY_EDGES[out["bin"].to_numpy() + 1])
    return out.drop(columns="bin")


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray) -> float:
    table = reliability(labels, scores)
    weights = table["rows"] / table["rows"].sum()
    return float((weights * (table["mean_score"] - table["positive_rate"]).abs()).sum())


@dataclass(frozen=True, slots=True)
class CardPrecision:
    per_day: pd.DataFrame
    """``day`` (start of the day), ``cards_ranked``, ``frauds_in_top_k``, ``precision``."""
    mean: float


def card_precision_at_k(frame: pd.DataFrame, test_start: pd.Timestamp, k: int = CARD_PRECISION_K) -> CardPrecision:
    """Per test day: rank cards by their highest score that day, take the top ``k``, count those with a fraud
    that day; cards already caught (a fraudulent card in an earlier day's top ``k``) are not ranked again.

    ``frame`` has ``card_id, timestamp, score, label``.
    """
    day = ((frame["timestamp"] - test_start) // pd.Timedelta(days=1)).astype(int)
    per_card = (frame.assign(day=day).groupby(["day", "card_id"], sort=True)
                .agg(score=("score", "max"), fraud=("label", "max")).reset_index())
    caught: set[str] = set()
    rows = []
    for d, group in per_card.groupby("day", sort=True):
        candidates = group.loc[~group["card_id"].isin(caught)]
        top = candidates.nlargest(k, "score")
        frauds = int(top["fraud"].sum())
        caught.update(top.loc[top["fraud"] == 1, "card_id"])
        rows.append({"day": test_start + pd.Timedelta(days=int(d)), "cards_ranked": len(candidates),
                     "frauds_in_top_k": frauds, "precision": frauds / k})
    table = pd.DataFrame(rows, columns=["day", "cards_ranked", "frauds_in_top_k", "precision"])
    return CardPrecision(table, float(table["precision"].mean()) if len(table) else float("nan"))


def scenario_recall(frame: pd.DataFrame, thresholds: dict[str, float]) -> pd.DataFrame:
    """Per fraud scenario: frauds in the test period and the share at or above each threshold."""
    frauds = frame.loc[(frame["label"] == 1) & frame["scenario"].notna()]
    rows = []
    for scenario, group in frauds.groupby("scenario", sort=True):
        row: dict[str, object] = {"scenario": scenario, "frauds": len(group)}
        for name, t in thresholds.items():
            row[f"recall_at_{name}"] = float((group["score"] >= t).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def ndcg_at_k(frame: pd.DataFrame, k: int = NDCG_K, score: str = "score") -> float:
    """Mean NDCG@k over sessions with at least one relevant row (``session_id``, ``label``, ``score``)."""
    has_positive = frame.groupby("session_id")["label"].transform("max") > 0
    data = frame.loc[has_positive, ["session_id", "label", score]]
    if data.empty:
        return float("nan")
    ranked = data.sort_values(["session_id", score], ascending=[True, False], kind="stable")
    ideal = data.sort_values(["session_id", "label"], ascending=[True, False], kind="stable")
    dcg = _dcg(ranked, k)
    idcg = _dcg(ideal, k)
    return float((dcg / idcg).mean())


def _dcg(ordered: pd.DataFrame, k: int) -> pd.Series:
    rank = ordered.groupby("session_id").cumcount()
    gain = ordered["label"].to_numpy() / np.log2(rank.to_numpy() + 2.0)
    gain = np.where(rank.to_numpy() < k, gain, 0.0)
    return pd.Series(gain, index=ordered.index).groupby(ordered["session_id"]).sum()
