"""Human explanations from the model's own per-row contributions."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from types import ModuleType

import numpy as np

TOP_FACTORS = 3
MIN_CONTRIBUTION = 0.05
"""Contributions (log-odds) below this are noise, not a risk factor."""

_PHRASES: dict[str, str] = {
    "amount": "amount of {v:,.2f}",
    "is_night": "night-time transaction",
    "is_weekend": "weekend transaction",
    "hour_of_day": "unusual time of day ({v:.0f}h UTC)",
    "card_tx_count_1h": "{v:.0f} transactions on this card in the last hour",
    "card_tx_count_24h": "{v:.0f} transactions on this card in the last 24 hours",
    "card_tx_count_7d": "{v:.0f} transactions on this card in the last 7 days",
    "card_amount_sum_1h": "{v:,.2f} spent on this card in the last hour",
    "card_amount_sum_24h": "{v:,.2f} spent on this card in the last 24 hours",
    "card_amount_sum_7d": "{v:,.2f} spent on this card in the last 7 days",
    "card_amount_mean_7d": "card's 7-day average amount of {v:,.2f}",
    "card_amount_ratio_7d": "amount is {v:.1f}x the card's 7-day average",
    "card_small_tx_count_1h": "{v:.0f} small transactions in the last hour (card-testing pattern)",
    "card_seconds_since_last_tx": "{v:.0f} s since the card's previous transaction",
    "card_distinct_merchants_24h": "{v:.0f} different merchants in 24 hours",
    "card_distinct_countries_24h": "{v:.0f} different countries in 24 hours",
    "card_country_is_new_7d": "country not seen on this card in 7 days",
    "card_country_is_foreign": "outside the card's usual country",
    "card_distance_from_usual_km": "{v:,.0f} km from the card's usual country",
    "merchant_tx_count_28d": "merchant volume of {v:.0f} transactions",
    "merchant_fraud_rate_28d": "merchant's confirmed fraud rate of {v:.1%}",
    "mcc_fraud_rate_28d": "merchant category's confirmed fraud rate of {v:.1%}",
}


def top_factors(contributions: np.ndarray, limit: int = TOP_FACTORS) -> list[list[int]]:
    """Per row of a ``(rows, features)`` matrix, the indices of the features pushing the score up the most,
    largest first (ties by feature order); one sort for the whole batch (in C when the extension is built:
    equal, tested)."""
    if _native is not None and contributions.dtype == np.float64 and contributions.ndim == 2 and limit <= 64:
        return _native.top_factors(contributions, limit, MIN_CONTRIBUTION)
    if len(contributions) < _SORT_ONE_BY_ONE_BELOW:  # numpy's per-call overhead outweighs a few rows' sort
        return [_row_top(row, limit) for row in contributions.tolist()]
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :limit]
    # in descending order, the factors at or above the minimum are a prefix of each row: keep its length
    kept = (np.take_along_axis(contributions, order, axis=1) >= MIN_CONTRIBUTION).sum(axis=1)
    return [row[:n] for row, n in zip(order.tolist(), kept.tolist(), strict=True)]


_SORT_ONE_BY_ONE_BELOW = 8


def _row_top(row: list[float], limit: int) -> list[int]:
    # stable: ties by feature order, as argsort's; NaN last, as argsort puts it (never a factor)
    order = sorted(range(len(row)), key=lambda j: -row[j] if row[j] == row[j] else math.inf)[:limit]
    return [j for j in order if row[j] >= MIN_CONTRIBUTION]


def _compile(template: str) -> tuple[str, str | None, str]:
    """``"before {v:spec} after"`` as (before, spec, after); spec None for a template without ``{v}``."""
    before, brace, rest = template.partition("{v")
    if not brace:
        return template, None, ""
    spec, _, after = rest.partition("}")
    return before, spec.removeprefix(":"), after


_COMPILED: dict[str, tuple[str, str | None, str]] = {name: _compile(text) for name, text in _PHRASES.items()}
"""The phrases split once: ``format(value, spec)`` costs half of ``template.format(v=value)``, three per event."""


def describe(name: str, value: float) -> str:
    compiled = _COMPILED.get(name)
    if compiled is None:
        return f"{name} = {value:g}"
    before, spec, after = compiled
    return before if spec is None else f"{before}{format(value, spec)}{after}"


_SPEC_CODES: dict[str | None, int] = {None: 0, ".0f": 1, ".1f": 2, ",.2f": 3, ",.0f": 4, ".1%": 5}
"""The format specs ``_decide.c`` writes itself; any other is formatted by Python."""
_PYTHON_SPEC = 6


@functools.cache  # one per feature-name tuple (module constants)
def phrase_table(names: tuple[str, ...]) -> tuple[tuple[str, int, str, str], ...]:
    """Per feature, what ``_decide.c`` writes for it: ``(before, spec code, spec, after)`` (see ``describe``)."""
    table = []
    for name in names:
        compiled = _COMPILED.get(name)
        if compiled is None:
            table.append((f"{name} = ", _PYTHON_SPEC, "g", ""))
        else:
            before, spec, after = compiled
            table.append((before, _SPEC_CODES.get(spec, _PYTHON_SPEC), spec or "", after))
    return tuple(table)


def fraud_explanation(risk_level: str, score: float, names: Sequence[str], values: Sequence[float],
                      factors: Sequence[int]) -> str:
    if not factors:
        if risk_level == "low":
            return "Transaction appears legitimate with low risk indicators."
        return f"{risk_level.capitalize()} risk (score {score:.2f}) without a single dominant factor."
    reasons = "; ".join(describe(names[i], float(values[i])) for i in factors)
    if risk_level == "low":
        return f"Transaction appears legitimate with low risk indicators (score {score:.2f}); " \
               f"strongest signals: {reasons}."
    return f"{risk_level.capitalize()} risk (score {score:.2f}): {reasons}."


_native: ModuleType | None
try:
    from stream_scorer.core import _decide as _native
except ImportError:  # not built (no C compiler at install): numpy's sort
    _native = None
