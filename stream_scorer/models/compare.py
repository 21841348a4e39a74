"""``stream-scorer models compare``: a shadow model against the served decisions, on the recorded events.

Reads the ``scoring-shadow`` topic (every shadow score with the served score and action) and, for fraud, the
``fraud-labels`` topic (chargebacks and confirmed genuine transactions: an event without a label counts as
genuine, the semantics training uses), then reports per shadow version: events, score correlation (Pearson and
Spearman), decision agreement with the served action, and average precision of both where labels exist.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


@dataclass
class Comparison:
    model: str
    shadow_version: str
    served_versions: dict[str, int]
    events: int
    pearson: float | None
    spearman: float | None
    agreement: float
    actions: dict[str, int] = field(default_factory=dict)
    """``served->shadow`` action pairs and their counts."""
    positives: int = 0
    served_average_precision: float | None = None
    shadow_average_precision: float | None = None
    mean_served_score: float = 0.0
    mean_shadow_score: float = 0.0

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


async def read_topic(bootstrap_servers: str, topic: str) -> list[bytes]:
    """Every record value from the beginning to the end offsets as of now (no consumer group)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [p["partition"] for t in described if t.get("error_code") == 0 for p in t["partitions"]]
    if not partitions:
        return []
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        values: list[bytes] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for records in batch.values():
                values.extend(r.value for r in records if r.value is not None)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return values
    finally:
        await consumer.stop()


def parse_labels(values: Iterable[bytes]) -> dict[str, bool]:
    """Latest label per transaction id (a later record corrects an earlier one)."""
    labels: dict[str, bool] = {}
    for value in values:
        try:
            body = orjson.loads(value)
            labels[str(body["transaction_id"])] = bool(body.get("is_fraud", True))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    return labels


def compare(records: Iterable[dict[str, object]], model: str, labels: dict[str, bool] | None = None,
            versions: Sequence[str] = ()) -> list[Comparison]:
    """One comparison per shadow version; a redelivered event counts once (its latest record)."""
    by_version: dict[str, dict[str, dict[str, object]]] = {}
    for rec in records:
        if rec.get("model") != model or (versions and rec.get("shadow_version") not in versions):
            continue
        by_version.setdefault(str(rec["shadow_version"]), {})[str(rec["event_id"])] = rec
    return [_compare(model, version, list(events.values()), labels) for version, events in sorted(by_version.items())]


def _compare(model: str, version: str, rows: list[dict[str, object]], labels: dict[str, bool] | None) -> Comparison:
    served = np.array([float(r["served_score"]) for r in rows])  # type: ignore[arg-type]
    shadow = np.array([float(r["shadow_score"]) for r in rows])  # type: ignore[arg-type]
    pairs = Counter(f"{r['served_action']}->{r['shadow_action']}" for r in rows)
    agree = sum(1 for r in rows if r["served_action"] == r["shadow_action"])
    out = Comparison(model=model, shadow_version=version,
                     served_versions=dict(Counter(str(r["served_version"]) for r in rows)), events=len(rows),
                     pearson=_correlation(served, shadow), spearman=_correlation(_ranks(served), _ranks(shadow)),
                     agreement=round(agree / len(rows), 6), actions=dict(pairs),
                     mean_served_score=round(float(served.mean()), 6), mean_shadow_score=round(float(shadow.mean()), 6))
    if labels is not None:
        y = np.array([labels.get(str(r["event_id"]), False) for r in rows], dtype=bool)
        out.positives = int(y.sum())
        if 0 < out.positives < len(y):
            from sklearn.metrics import average_precision_score

            out.served_average_precision = round(float(average_precision_score(y, served)), 6)
            out.shadow_average_precision = round(float(average_precision_score(y, shadow)), 6)
    return out


def _ranks(values: np.ndarray) -> np.ndarray:
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    # ties share their mean rank
    uniq, inverse = np.unique(values, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    return np.asarray((sums / counts)[inverse], dtype=np.float64) if len(uniq) < len(values) else ranks


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return round(float(np.corrcoef(a, b)[0, 1]), 6)
