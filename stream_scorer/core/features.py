"""Feature definitions, written once and used by training (offline replay) and serving (Redis).

Every feature is a pure function of the event and of the *state as of the event's time*:

* the card's prior transactions in ``[t - 7d, t)`` (a window, so reading it never includes the event itself and a
  redelivered event reads exactly what it read the first time), summarised by
  :func:`stream_scorer.core.window.aggregate_card_window`;
* daily transaction / fraud-label counters of the merchant and of the MCC, used only for days
  ``[day(t) - LABEL_DELAY_DAYS - RISK_WINDOW_DAYS, day(t) - LABEL_DELAY_DAYS)``: fraud labels arrive late
  (chargebacks), so recent days would look falsely clean; a label counts only once it has arrived;
* the user's prior session events in ``[t - 14d, t)`` (from which current-session signals are also derived);
* daily view / cart / purchase counters of the item for days ``[day(t) - 7, day(t))``.

How the state is updated from one event lives in :mod:`stream_scorer.core.feature_state` (in memory, for
training and tests) and :mod:`stream_scorer.core.feature_store` (Redis); both apply the same rules and a test
replays history through both and compares every value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Literal

from stream_scorer.core.feature_inputs import (
    DAY,
    FraudState,
    PersonalizationState,
    day_of,
)
from stream_scorer.core.geo import DISTANCES, country_distance_km
from stream_scorer.core.window import aggregate_card_window, native_fraud_feature_rows

Entity = Literal["event", "card", "merchant", "mcc", "user", "item", "session"]

HOUR = 3600.0
CARD_WINDOW_SEC = 7 * DAY
USER_WINDOW_SEC = 14 * DAY
LABEL_DELAY_DAYS = 7
RISK_WINDOW_DAYS = 28
ITEM_WINDOW_DAYS = 7
SMALL_AMOUNT = 5.0
RISK_PRIOR_RATE = 0.005
RISK_PRIOR_WEIGHT = 20.0


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    entity: Entity
    default: float
    description: str
    drift_monitored: bool = True
    """False for calendar features: over the minutes a drift window covers, their distribution is degenerate
    (one hour, one weekday), so their PSI against a training period of weeks says nothing."""


_TIME_ORDER = attrgetter("ts", "event_id")
"""User windows are summed in time order, then by event id (a C key function: sorted once per event scored);
card windows the same way, in :mod:`stream_scorer.core.window`."""


# -------------------------------------------------------------------------------------------- fraud definitions
FRAUD_FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("amount", "event", 0.0, "Transaction amount."),
    FeatureSpec("hour_of_day", "event", 12.0, "UTC hour of the transaction, fractional.", drift_monitored=False),
    FeatureSpec("is_night", "event", 0.0, "1 between 00:00 and 06:00 UTC.", drift_monitored=False),
    FeatureSpec("is_weekend", "event", 0.0, "1 on Saturday or Sunday (UTC).", drift_monitored=False),
    FeatureSpec("card_tx_count_1h", "card", 0.0, "Card's transactions in the previous hour."),
    FeatureSpec("card_tx_count_24h", "card", 0.0, "Card's transactions in the previous 24 hours."),
    FeatureSpec("card_tx_count_7d", "card", 0.0, "Card's transactions in the previous 7 days."),
    FeatureSpec("card_amount_sum_1h", "card", 0.0, "Amount spent by the card in the previous hour."),
    FeatureSpec("card_amount_sum_24h", "card", 0.0, "Amount spent by the card in the previous 24 hours."),
    FeatureSpec("card_amount_sum_7d", "card", 0.0, "Amount spent by the card in the previous 7 days."),
    FeatureSpec("card_amount_mean_7d", "card", 0.0, "Card's mean amount over 7 days (0 without history)."),
    FeatureSpec("card_amount_ratio_7d", "card", 1.0, "Amount divided by the card's 7-day mean amount."),
    FeatureSpec("card_small_tx_count_1h", "card", 0.0, f"Card's transactions under {SMALL_AMOUNT} in the "
                                                       "previous hour (card testing)."),
    FeatureSpec("card_seconds_since_last_tx", "card", CARD_WINDOW_SEC, "Seconds since the card's previous "
                                                                       "transaction (capped at 7 days)."),
    FeatureSpec("card_distinct_merchants_24h", "card", 0.0, "Distinct merchants the card used in 24 hours."),
    FeatureSpec("card_distinct_countries_24h", "card", 0.0, "Distinct countries the card used in 24 hours."),
    FeatureSpec("card_country_is_new_7d", "card", 0.0, "1 if the country is absent from the card's 7-day "
                                                       "history (0 without history)."),
    FeatureSpec("card_country_is_foreign", "card", 0.0, "1 if the country differs from the card's usual "
                                                        "(most frequent 7-day) country."),
    FeatureSpec("card_distance_from_usual_km", "card", 0.0, "Distance between the transaction's country and "
                                                            "the card's usual country (centroids, km)."),
    FeatureSpec("merchant_tx_count_28d", "merchant", 0.0, "Merchant's transactions in the label-known window."),
    FeatureSpec("merchant_fraud_rate_28d", "merchant", RISK_PRIOR_RATE, "Merchant's smoothed fraud rate over "
                "the 28 days that end LABEL_DELAY_DAYS before the transaction (labels known by then)."),
    FeatureSpec("mcc_fraud_rate_28d", "mcc", RISK_PRIOR_RATE, "The same smoothed fraud rate for the MCC."),
)
FRAUD_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FRAUD_FEATURES)
FRAUD_DEFAULTS: dict[str, float] = {f.name: f.default for f in FRAUD_FEATURES}
_CARD_FEATURES = tuple(f.name for f in FRAUD_FEATURES if f.entity == "card")
_MERCHANT_FEATURES = tuple(f.name for f in FRAUD_FEATURES if f.entity == "merchant")
_MCC_FEATURES = tuple(f.name for f in FRAUD_FEATURES if f.entity == "mcc")

def smoothed_rate(events: int, frauds: int) -> float:
    return (frauds + RISK_PRIOR_RATE * RISK_PRIOR_WEIGHT) / (events + RISK_PRIOR_WEIGHT)


def risk_window(ts: float) -> tuple[int, int]:
    """First day (inclusive) and end day (exclusive) whose labels are known at ``ts``."""
    end = day_of(ts) - LABEL_DELAY_DAYS
    return end - RISK_WINDOW_DAYS, end


def fraud_features(ts: float, amount: float, country: str | None, state: FraudState) -> list[float]:
    """The fraud feature vector, in ``FRAUD_FEATURE_NAMES`` order.

    ``state.card_history`` may hold transactions at or after ``ts`` (a store that already saw later events); they
    are ignored, so the result is the state as of ``ts``.
    """
    (n1h, n24h, n7d, small1h, s1h, s24h, s7d, latest, merchants24, countries24, country_seen,
     usual) = aggregate_card_window(state.card_history, ts, country, CARD_WINDOW_SEC, DAY, HOUR, SMALL_AMOUNT)
    hour = (ts % DAY) / HOUR
    day = day_of(ts)
    mean7d = s7d / n7d if n7d else 0.0
    return [
        amount,
        round(hour, 6),
        1.0 if hour < 6 else 0.0,
        1.0 if (day + 3) % 7 >= 5 else 0.0,  # 1970-01-01 was a Thursday; Monday == 0
        float(n1h),
        float(n24h),
        float(n7d),
        s1h,
        s24h,
        s7d,
        mean7d,
        amount / mean7d if mean7d > 0 else 1.0,
        float(small1h),
        min(ts - latest, CARD_WINDOW_SEC) if latest is not None else CARD_WINDOW_SEC,
        float(merchants24),
        float(countries24),
        1.0 if (country and n7d and not country_seen) else 0.0,
        1.0 if (country and usual and country != usual) else 0.0,
        country_distance_km(country, usual) if (country and usual) else 0.0,
        *risk_features(state, *risk_window(ts)),
    ]


def risk_features(state: FraudState, first: int, end: int) -> tuple[float, float, float]:
    """The merchant's transactions and smoothed fraud rate, and the MCC's rate, over days ``[first, end)``."""
    merchant = state.merchant.totals(first, end)
    mcc = state.mcc.totals(first, end)
    m_tx = merchant.get("tx", 0)
    return (float(m_tx), smoothed_rate(m_tx, merchant.get("fraud", 0)),
            smoothed_rate(mcc.get("tx", 0), mcc.get("fraud", 0)))


def fraud_feature_rows(times: Sequence[float], amounts: Sequence[float], countries: Sequence[str | None],
                       states: Sequence[FraudState]) -> list[list[float]]:
    """``fraud_features`` of each row: in C when the extension is built (``_window.c``, equal: tested), each
    pair of counters' risk features computed once per day."""
    if _native_rows is None:
        return [fraud_features(ts, amount, country, state)
                for ts, amount, country, state in zip(times, amounts, countries, states, strict=True)]
    risks: list[tuple[float, float, float]] = []
    memo: dict[tuple[int, int, int], tuple[float, float, float]] = {}  # by identity: the states are alive
    for ts, state in zip(times, states, strict=True):
        first, end = risk_window(ts)
        key = (id(state.merchant), id(state.mcc), first)
        risk = memo.get(key)
        if risk is None:
            risk = memo[key] = risk_features(state, first, end)
        risks.append(risk)
    return _native_rows([s.card_history for s in states], times, amounts, countries, risks, DISTANCES,
                        CARD_WINDOW_SEC, DAY, HOUR, SMALL_AMOUNT)


def missing_fraud_features(ts: float, state: FraudState) -> list[str]:
    """Features served from their default because their entity has no data in the window they read at ``ts``
    (the definition: the scorer uses ``missing_fraud_feature_rows``)."""
    missing: list[str] = []
    window = aggregate_card_window(state.card_history, ts, None, CARD_WINDOW_SEC, DAY, HOUR, SMALL_AMOUNT)
    if not window[2] > 0:  # its 7-day count
        missing.extend(_CARD_FEATURES)
    first, end = risk_window(ts)
    if not state.merchant.total("tx", first, end):
        missing.extend(_MERCHANT_FEATURES)
    if not state.mcc.total("tx", first, end):
        missing.extend(_MCC_FEATURES)
    return missing


def missing_fraud_feature_rows(times: Sequence[float], states: Sequence[FraudState],
                               rows: Sequence[Sequence[float]]) -> list[list[str]]:
    """``missing_fraud_features`` of each row of a batch (equal: tested): the card and merchant questions answered
    by the row ``fraud_features`` computed (its 7-day and 28-day counts) instead of scanning the window again,
    each MCC's once per day."""
    out: list[list[str]] = []
    mcc_seen: dict[tuple[int, int], bool] = {}  # by identity: the states are alive
    for ts, state, row in zip(times, states, rows, strict=True):
        key = (id(state.mcc), day_of(ts))
        seen = mcc_seen.get(key)
        if seen is None:
            seen = mcc_seen[key] = bool(state.mcc.total("tx", *risk_window(ts)))
        out.append(list(_MISSING[(row[_CARD_TX_7D] > 0, bool(row[_MERCHANT_TX_28D]), seen)]))
    return out


_native_rows = native_fraud_feature_rows
_CARD_TX_7D = FRAUD_FEATURE_NAMES.index("card_tx_count_7d")
_MERCHANT_TX_28D = FRAUD_FEATURE_NAMES.index("merchant_tx_count_28d")


# -------------------------------------------------------------------------------------- personalization definitions
PERSONALIZATION_FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("item_price", "event", 0.0, "Price of the item."),
    FeatureSpec("hour_of_day", "event", 12.0, "UTC hour of the event, fractional.", drift_monitored=False),
    FeatureSpec("user_events_14d", "user", 0.0, "User's session events in the previous 14 days."),
    FeatureSpec("user_views_14d", "user", 0.0, "User's item views in 14 days."),
    FeatureSpec("user_carts_14d", "user", 0.0, "User's cart adds in 14 days."),
    FeatureSpec("user_purchases_14d", "user", 0.0, "User's purchases in 14 days."),
    FeatureSpec("user_sessions_14d", "user", 0.0, "User's distinct sessions in 14 days."),
    FeatureSpec("user_conversion_rate_14d", "user", 0.0, "Purchases per view (smoothed) over 14 days."),
    FeatureSpec("user_category_share_14d", "user", 0.0, "Share of the user's 14-day events in this category."),
    FeatureSpec("user_category_purchases_14d", "user", 0.0, "User's purchases in this category in 14 days."),
    FeatureSpec("user_avg_purchase_price_14d", "user", 0.0, "User's mean purchase price (0 without purchases)."),
    FeatureSpec("price_ratio_to_user_avg", "user", 1.0, "Item price over the user's mean purchase price."),
    FeatureSpec("user_seconds_since_last_event", "user", USER_WINDOW_SEC, "Seconds since the user's previous "
                                                                          "event (capped at 14 days)."),
    FeatureSpec("user_item_views_14d", "user", 0.0, "Times the user viewed this item in 14 days."),
    FeatureSpec("item_views_7d", "item", 0.0, "Item views over the 7 previous full days."),
    FeatureSpec("item_purchases_7d", "item", 0.0, "Item purchases over the 7 previous full days."),
    FeatureSpec("item_conversion_rate_7d", "item", 0.0, "Item purchases per view (smoothed), 7 days."),
    FeatureSpec("session_event_count", "session", 0.0, "Events so far in the current session."),
    FeatureSpec("session_views", "session", 0.0, "Views so far in the current session."),
    FeatureSpec("session_carts", "session", 0.0, "Cart adds so far in the current session."),
    FeatureSpec("session_distinct_categories", "session", 0.0, "Distinct categories in the current session."),
    FeatureSpec("session_item_views", "session", 0.0, "Views of this item in the current session."),
    FeatureSpec("session_category_share", "session", 0.0, "Share of the session's events in this category."),
    FeatureSpec("session_duration_sec", "session", 0.0, "Seconds since the session's first event."),
)
PERSONALIZATION_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in PERSONALIZATION_FEATURES)
NOT_DRIFT_MONITORED: frozenset[str] = frozenset(f.name for f in (*FRAUD_FEATURES, *PERSONALIZATION_FEATURES)
                                                if not f.drift_monitored)
PERSONALIZATION_DEFAULTS: dict[str, float] = {f.name: f.default for f in PERSONALIZATION_FEATURES}
_USER_FEATURES = tuple(f.name for f in PERSONALIZATION_FEATURES if f.entity == "user")
_SESSION_FEATURES = tuple(f.name for f in PERSONALIZATION_FEATURES if f.entity == "session")
_ITEM_FEATURES = tuple(f.name for f in PERSONALIZATION_FEATURES if f.entity == "item")


def personalization_features(ts: float, item_id: str, category: str, price: float, session_id: str | None,
                             state: PersonalizationState) -> list[float]:
    """The personalization feature vector, in ``PERSONALIZATION_FEATURE_NAMES`` order, as of ``ts``."""
    window = sorted((e for e in state.user_history if ts - USER_WINDOW_SEC <= e.ts < ts), key=_TIME_ORDER)
    views = carts = purchases = cat_events = cat_purchases = item_views = 0
    purchase_sum = 0.0
    sessions: set[str] = set()
    last_ts: float | None = None
    s_events = s_views = s_carts = s_item_views = s_cat = 0
    s_categories: set[str] = set()
    s_first: float | None = None
    for e in window:
        sessions.add(e.session_id)
        if e.event_type == "view":
            views += 1
            if e.item_id == item_id:
                item_views += 1
        elif e.event_type == "cart":
            carts += 1
        elif e.event_type == "purchase":
            purchases += 1
            purchase_sum += e.price
            if e.category == category:
                cat_purchases += 1
        if e.category == category:
            cat_events += 1
        if last_ts is None or e.ts > last_ts:
            last_ts = e.ts
        if session_id is not None and e.session_id == session_id:
            s_events += 1
            s_categories.add(e.category)
            if e.category == category:
                s_cat += 1
            if e.event_type == "view":
                s_views += 1
                if e.item_id == item_id:
                    s_item_views += 1
            elif e.event_type == "cart":
                s_carts += 1
            if s_first is None or e.ts < s_first:
                s_first = e.ts
    n = len(window)
    avg_purchase = purchase_sum / purchases if purchases else 0.0
    first_day = day_of(ts) - ITEM_WINDOW_DAYS
    item = state.item.totals(first_day, day_of(ts))
    i_views = item.get("view", 0)
    i_purchases = item.get("purchase", 0)
    return [
        price,
        round((ts % DAY) / HOUR, 6),
        float(n),
        float(views),
        float(carts),
        float(purchases),
        float(len(sessions)),
        purchases / (views + 5.0),
        cat_events / n if n else 0.0,
        float(cat_purchases),
        avg_purchase,
        price / avg_purchase if avg_purchase > 0 else 1.0,
        min(ts - last_ts, USER_WINDOW_SEC) if last_ts is not None else USER_WINDOW_SEC,
        float(item_views),
        float(i_views),
        float(i_purchases),
        i_purchases / (i_views + 5.0),
        float(s_events),
        float(s_views),
        float(s_carts),
        float(len(s_categories)),
        float(s_item_views),
        s_cat / s_events if s_events else 0.0,
        ts - s_first if s_first is not None else 0.0,
    ]


def missing_personalization_features(ts: float, session_id: str | None,
                                     state: PersonalizationState) -> list[str]:
    """Features served from their default because their entity has no data in the window they read at ``ts``."""
    missing: list[str] = []
    window = [e for e in state.user_history if ts - USER_WINDOW_SEC <= e.ts < ts]
    if not window:
        missing.extend(_USER_FEATURES)
    if session_id is None or not any(e.session_id == session_id for e in window):
        missing.extend(_SESSION_FEATURES)
    if not any(state.item.totals(day_of(ts) - ITEM_WINDOW_DAYS, day_of(ts)).values()):
        missing.extend(_ITEM_FEATURES)
    return missing

_MISSING: dict[tuple[bool, bool, bool], tuple[str, ...]] = {
    (card, merchant, mcc): (*(() if card else _CARD_FEATURES), *(() if merchant else _MERCHANT_FEATURES),
                            *(() if mcc else _MCC_FEATURES))
    for card in (False, True) for merchant in (False, True) for mcc in (False, True)}
"""What ``missing_fraud_features`` lists, by whether the card, the merchant and the MCC have data."""
