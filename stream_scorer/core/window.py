"""A card's window of prior transactions, as the feature store keeps it, and the one aggregation the fraud
features read from it.

The window is a flat list ``[member, time, member, time, ...]``, each member
``transaction_id|amount|country|merchant_id`` (:func:`card_member`) and each time the event time in epoch seconds
(a float; a str is read too). The training replay, the batch merge and the Redis store (which keeps a card's
transactions as one string, its card log, read by :func:`read_card_log`) all hand the feature functions this same
shape, so nothing is parsed into objects first.

:func:`aggregate_card_window_py` is the definition. ``_window.c`` computes the same thing reading the members'
bytes in place (~10x cheaper: it is one of the largest per-event costs); it is built by ``pip install`` and used
when present, and a test holds the two bit-identical (``NATIVE`` says which one runs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

CardWindow = Sequence[str | float]
"""``[member, time, member, time, ...]``: see the module's docstring."""

CardAggregates = tuple[int, int, int, int, float, float, float, float | None, int, int, bool, str | None]
"""What :func:`aggregate_card_window` returns, for the window ``[ts - window_sec, ts)``: counts in the last hour,
day and whole window, small transactions in the last hour; amount sums over the hour, day and window (added in
time order); the latest time (None if empty); distinct merchants and countries in the last day; whether
``country`` occurs in the window; the most frequent country (ties to the alphabetically first; None if none)."""


def card_member(transaction_id: str, amount: float, country: str | None, merchant_id: str) -> str:
    """A transaction as a window member (ids never contain ``|``: see ``schemas.events.EntityId``)."""
    return f"{transaction_id}|{amount!r}|{country or ''}|{merchant_id}"


def card_log_entry(member: str, ts: float) -> str:
    """A transaction as its card log stores it (see :func:`read_card_log_py`)."""
    return f"{member}|{ts!r}"


def read_card_log_py(log: str | None, low: float, high: float) -> tuple[list[str | float], float | None]:
    """The definition of :func:`read_card_log`: a card log as Redis stores it (``stream_scorer.core.redis_scripts``,
    ``CARD_LOGS``: ``{_updated_at}`` then ``\n{member}|{time}`` per transaction, in arrival order) read as the
    window ``[low, high)`` (the members in that time range and their times, in the log's order) and the card's
    update time; ``None`` (no log) is an empty window that was never updated."""
    if log is None:
        return [], None
    updated, *entries = log.split("\n")
    window: list[str | float] = []
    for entry in entries:
        member, bar, text = entry.rpartition("|")
        if not bar:
            raise ValueError("card log entry without a time")
        t = float(text)
        if low <= t < high:
            window += (member, t)
    return window, float(updated)


def member_id(member: str) -> str:
    """The transaction id of a window member."""
    return member.partition("|")[0]


def aggregate_card_window_py(history: CardWindow, ts: float, country: str | None, window_sec: float,
                             day_sec: float, hour_sec: float, small_amount: float) -> CardAggregates:
    """The definition (see :data:`CardAggregates`). Entries at or after ``ts`` or before ``ts - window_sec`` are
    ignored, so a store that already holds later events gives the state as of ``ts``."""
    if len(history) % 2:
        raise ValueError("history must hold (member, time) pairs")
    low = ts - window_sec
    kept: list[tuple[float, str, int, str]] = []
    for j in range(0, len(history), 2):
        t = history[j + 1]
        if type(t) is not float:
            if not isinstance(t, float | str) and type(t) is not int:  # as the C version: no arbitrary __float__
                raise TypeError(f"window time must be a float, int or str, not {type(t).__name__}")
            t = float(t)
        if low <= t < ts:
            member = history[j]
            if not isinstance(member, str):
                raise TypeError(f"window member must be str, not {type(member).__name__}")
            kept.append((t, member_id(member), j, member))
    kept.sort()  # time order, then transaction id, then position: float sums must not depend on the source's order
    n1h = n24h = small1h = 0
    s1h = s24h = s7d = 0.0
    merchants24: set[str] = set()
    countries24: set[str] = set()
    countries: dict[str, int] = {}
    for t, _, _, member in kept:
        _, amount_text, tx_country, merchant = member.split("|", 3)
        amount = float(amount_text)
        s7d += amount
        if tx_country:
            countries[tx_country] = countries.get(tx_country, 0) + 1
        if ts - t <= day_sec:
            n24h += 1
            s24h += amount
            merchants24.add(merchant)
            if tx_country:
                countries24.add(tx_country)
            if ts - t <= hour_sec:
                n1h += 1
                s1h += amount
                if amount < small_amount:
                    small1h += 1
    usual = None
    if countries:
        most = max(countries.values())
        usual = min(c for c, n in countries.items() if n == most)
    return (n1h, n24h, len(kept), small1h, s1h, s24h, s7d, kept[-1][0] if kept else None, len(merchants24),
            len(countries24), bool(country) and country in countries, usual)


native_fraud_feature_rows: Callable[..., list[list[float]]] | None
try:
    from stream_scorer.core._window import aggregate_card_window, read_card_log
    from stream_scorer.core._window import fraud_feature_rows as native_fraud_feature_rows
    NATIVE = True
except ImportError:  # not built (no C compiler at install): the definition itself, ~10x slower
    aggregate_card_window = aggregate_card_window_py
    read_card_log = read_card_log_py
    native_fraud_feature_rows = None  # features.fraud_feature_rows then calls fraud_features per row
    NATIVE = False
