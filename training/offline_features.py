"""Offline features: history replayed in time order through the online update rules.

For each event the state is read and its features computed *before* the event's own update is applied, and
every fraud label is applied at its arrival time (strictly before the events that follow it; a label arriving at
the same instant as a transaction counts only for later ones). A feature at event t therefore uses exactly what
the serving path would have known just before t: point-in-time correct, and identical to serving because both
go through :mod:`stream_scorer.core.features` and the same update rules.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from stream_scorer.core.feature_state import InMemoryFeatureState, LabelUpdate, SessionUpdate, TransactionUpdate
from stream_scorer.core.features import (
    FRAUD_FEATURE_NAMES,
    PERSONALIZATION_FEATURE_NAMES,
    fraud_features,
    personalization_features,
)
from training.simulate.sessions import conversion_labels

Progress = Callable[[int], None]
"""Called with the number of events replayed since the previous call."""
_PROGRESS_EVERY = 10_000


def epoch_seconds(timestamps: pd.Series) -> np.ndarray:
    """UTC datetimes as float epoch seconds (what the feature definitions take)."""
    naive = pd.to_datetime(timestamps, utc=True).dt.tz_convert(None).astype("datetime64[us]")
    # Same arithmetic as ``datetime.timestamp()`` on the serving side: integer microseconds / 1e6.
    return naive.to_numpy().astype(np.int64) / 1e6


def fraud_feature_frame(transactions: pd.DataFrame, labels: pd.DataFrame, progress: Progress | None = None,
                        state: InMemoryFeatureState | None = None) -> pd.DataFrame:
    """One row per transaction: ids, ``timestamp``, ``label``, ``scenario`` and the ``FRAUD_FEATURE_NAMES``.

    ``transactions`` and ``labels`` are in the stream shapes (see :mod:`training.data`); ``state`` may be passed
    to keep the final online state (materialization and tests use it).
    """
    tx = transactions.sort_values("timestamp", kind="stable").reset_index(drop=True)
    lab = labels.sort_values("timestamp", kind="stable").reset_index(drop=True)
    state = state if state is not None else InMemoryFeatureState()
    tx_ts = epoch_seconds(tx["timestamp"])
    label_ts = epoch_seconds(lab["timestamp"]) if len(lab) else np.empty(0)
    label_updates = _label_updates(lab)
    out = np.empty((len(tx), len(FRAUD_FEATURE_NAMES)), dtype=np.float64)
    countries = tx["country_code"].tolist() if "country_code" in tx.columns else [None] * len(tx)
    rows = zip(tx["transaction_id"].tolist(), tx["card_id"].tolist(), tx["merchant_id"].tolist(),
               tx["mcc_code"].tolist(), countries, tx["transaction_amount"].tolist(), tx_ts.tolist(), strict=True)
    next_label = 0
    for i, (tid, card, merchant, mcc, country, amount, ts) in enumerate(rows):
        while next_label < len(label_updates) and label_ts[next_label] < ts:
            state.apply_label(label_updates[next_label])
            next_label += 1
        country = country if isinstance(country, str) and country else None
        out[i] = fraud_features(ts, amount, country, state.fraud_state(card, merchant, mcc))
        state.apply_transaction(TransactionUpdate(tid, card, ts, amount, country, merchant, mcc))
        if progress is not None and (i + 1) % _PROGRESS_EVERY == 0:
            progress(_PROGRESS_EVERY)
    if progress is not None:
        progress(len(tx) % _PROGRESS_EVERY)
    frame = pd.DataFrame(out, columns=list(FRAUD_FEATURE_NAMES))
    ids = pd.DataFrame({
        "transaction_id": tx["transaction_id"], "card_id": tx["card_id"], "merchant_id": tx["merchant_id"],
        "timestamp": tx["timestamp"], "label": tx["is_fraud"].astype(np.int8),
        "scenario": tx["scenario"] if "scenario" in tx.columns else None,
    })
    return pd.concat([ids, frame], axis=1)


def personalization_feature_frame(events: pd.DataFrame, progress: Progress | None = None,
                                  state: InMemoryFeatureState | None = None,
                                  event_types: tuple[str, ...] = ("view",)) -> pd.DataFrame:
    """One row per event of ``event_types`` (views by default: the conversion label is defined on views).

    Columns: ``event_id, user_id, session_id, item_id, timestamp, label`` and ``PERSONALIZATION_FEATURE_NAMES``.
    Every event updates the state, whatever its type.
    """
    ev = events.sort_values("timestamp", kind="stable").reset_index(drop=True)
    state = state if state is not None else InMemoryFeatureState()
    ts_all = epoch_seconds(ev["timestamp"])
    wanted = ev["event_type"].isin(event_types).to_numpy()
    out = np.empty((int(wanted.sum()), len(PERSONALIZATION_FEATURE_NAMES)), dtype=np.float64)
    rows = zip(ev["event_id"].tolist(), ev["user_id"].tolist(), ev["session_id"].tolist(), ev["item_id"].tolist(),
               ev["item_category"].tolist(), ev["item_price"].tolist(), ev["event_type"].tolist(), ts_all.tolist(),
               wanted.tolist(), strict=True)
    j = 0
    for i, (eid, user, session, item, category, price, etype, ts, keep) in enumerate(rows):
        session = session if isinstance(session, str) and session else None
        if keep:
            out[j] = personalization_features(ts, item, category, price, session,
                                              state.personalization_state(user, item))
            j += 1
        state.apply_session_event(SessionUpdate(eid, user, ts, etype, item, category, price, session))
        if progress is not None and (i + 1) % _PROGRESS_EVERY == 0:
            progress(_PROGRESS_EVERY)
    if progress is not None:
        progress(len(ev) % _PROGRESS_EVERY)
    chosen = ev.loc[wanted].reset_index(drop=True)
    ids = pd.DataFrame({
        "event_id": chosen["event_id"], "user_id": chosen["user_id"], "session_id": chosen["session_id"],
        "item_id": chosen["item_id"], "timestamp": chosen["timestamp"],
        "label": conversion_labels(ev).loc[wanted].reset_index(drop=True),
    })
    return pd.concat([ids, pd.DataFrame(out, columns=list(PERSONALIZATION_FEATURE_NAMES))], axis=1)


def _label_updates(labels: pd.DataFrame) -> list[LabelUpdate]:
    if labels.empty:
        return []
    return [LabelUpdate(tid, merchant, mcc, ts, bool(fraud)) for tid, merchant, mcc, ts, fraud in zip(
        labels["transaction_id"].tolist(), labels["merchant_id"].tolist(), labels["mcc_code"].tolist(),
        epoch_seconds(labels["transaction_timestamp"]).tolist(), labels["is_fraud"].tolist(), strict=True)]
