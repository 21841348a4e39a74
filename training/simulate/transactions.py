"""Seeded simulator of card transactions and their delayed chargeback labels.

Cards have a home country, a spending level and spread, a daily activity rate, a preferred time of day and a
handful of favourite merchants; some travel (genuine foreign spending). Merchants have a country, an MCC and a
popularity. On top of that genuine activity, three documented fraud scenarios, each only catchable with
history-based features:

* ``compromised_merchant``: a merchant is compromised for 10-30 days and every transaction there in that period is
  fraudulent (amounts look ordinary). Caught by the merchant's fraud rate learned from delayed labels. Cards that
  used the merchant in that period leak: some become ``compromised_card`` cases 1-14 days later.
* ``compromised_card``: a stolen card is used for a burst of 2-10 transactions over hours to a few days, with
  amounts several times the card's usual spend, mostly in a far-away country and at high-risk MCCs. Caught by
  amount-relative-to-usual, foreign-country / distance and velocity features.
* ``card_testing``: a burst of 3-8 tiny amounts (< 5) at online merchants within minutes, then 1-2 large ones.
  Caught by the small-transaction count and short-term velocity.

Fraud labels (chargebacks) arrive 1-20 days after the transaction, about a third later than the 7-day label
delay; labels whose arrival lies after the history's end are kept (with that future arrival time) so evaluation
knows the truth, and replays simply never reach them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from stream_scorer.core.geo import COUNTRY_CENTROIDS
from training.simulate import default_history_end, history_tag

DAY_SEC = 86_400
GENUINE = "genuine"
SCENARIOS = ("compromised_merchant", "compromised_card", "card_testing")

# Card home countries (relative weights); merchants exist in every country of the centroid table.
_HOME_WEIGHTS = {
    "US": 30, "GB": 10, "DE": 8, "FR": 7, "ES": 5, "IT": 5, "CA": 5, "NL": 3, "AU": 3, "JP": 4, "BR": 3,
    "MX": 3, "IN": 3, "PL": 2, "SE": 2, "KR": 2, "IE": 1, "BE": 1, "CH": 1, "PT": 1, "SG": 1, "ZA": 1,
}
# Where stolen cards get used.
_FRAUD_COUNTRIES = ("RU", "UA", "NG", "RO", "ID", "PH", "VN", "BR", "CN", "TR", "EG", "TH")
# code, share of merchants, amount factor relative to the card's usual spend
_MCCS: tuple[tuple[str, float, float], ...] = (
    ("5411", 0.20, 1.0), ("5812", 0.13, 1.0), ("5814", 0.12, 0.35), ("5541", 0.09, 1.1), ("5311", 0.07, 1.8),
    ("5691", 0.07, 2.0), ("5912", 0.06, 0.7), ("5999", 0.09, 1.2), ("5732", 0.05, 4.0), ("4111", 0.05, 0.3),
    ("7011", 0.02, 5.0), ("4511", 0.01, 8.0), ("5944", 0.02, 6.0), ("4829", 0.02, 4.0),
)
_HIGH_RISK_MCCS = frozenset({"5732", "5944", "4829", "5999", "5311"})
_ONLINE_MCCS = frozenset({"5999", "4829"})


@dataclass(frozen=True, slots=True)
class TransactionSimConfig:
    """Sizes and rates of the simulated history (defaults: what ``make train`` uses)."""

    n_cards: int = 5_000
    n_merchants: int = 2_000
    days: int = 70
    end: datetime | None = None
    """Exclusive end of the history; default: the start of the current UTC hour."""
    seed: int = 7
    tx_per_card_day: float = 1.2
    travel_share: float = 0.12
    compromised_merchants_per_day: float = 0.12
    merchant_leak_prob: float = 0.08
    compromised_cards_per_day: float = 2.2
    card_testing_per_day: float = 1.0

    def resolved_end(self) -> datetime:
        return (self.end or default_history_end()).astimezone(UTC)

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["end"] = self.resolved_end().isoformat()
        return d


@dataclass(frozen=True, slots=True)
class SimulatedTransactions:
    transactions: pd.DataFrame
    """``transaction_id, timestamp, card_id, merchant_id, mcc_code, country_code, transaction_amount, is_fraud,
    scenario``, sorted by time."""
    labels: pd.DataFrame
    """``transaction_id, card_id, merchant_id, mcc_code, transaction_timestamp, timestamp, is_fraud`` (frauds)."""
    config: TransactionSimConfig
    end: datetime


@dataclass(slots=True)
class _World:
    countries: list[str]
    card_country: np.ndarray
    card_level: np.ndarray
    card_spread: np.ndarray
    card_rate: np.ndarray
    card_hour: np.ndarray
    card_favourites: np.ndarray
    merchant_country: np.ndarray
    merchant_mcc: np.ndarray
    merchant_pop: np.ndarray
    by_country: list[np.ndarray]


@dataclass(slots=True)
class _Rows:
    """Columns of transactions being built (merchant index, card index, epoch second, amount, scenario)."""

    card: list[np.ndarray]
    merchant: list[np.ndarray]
    ts: list[np.ndarray]
    amount: list[np.ndarray]
    scenario: list[np.ndarray]

    def add(self, card: np.ndarray, merchant: np.ndarray, ts: np.ndarray, amount: np.ndarray, scenario: str) -> None:
        self.card.append(card)
        self.merchant.append(merchant)
        self.ts.append(ts)
        self.amount.append(amount)
        self.scenario.append(np.full(len(card), scenario, dtype=object))


def simulate_transactions(config: TransactionSimConfig | None = None) -> SimulatedTransactions:
    """Generate the history; identical output for identical ``config`` (``end`` included)."""
    cfg = config or TransactionSimConfig()
    end = cfg.resolved_end()
    rng = np.random.default_rng(cfg.seed)
    world = _build_world(cfg, rng)
    end_s = int(end.timestamp())
    start_s = end_s - cfg.days * DAY_SEC

    card, merchant, ts = _genuine_activity(cfg, world, rng, start_s)
    amount = _amounts(world, rng, card, merchant)
    scenario = np.full(len(card), GENUINE, dtype=object)
    leaked = _compromise_merchants(cfg, world, rng, start_s, card, merchant, ts, scenario)
    rows = _Rows([card], [merchant], [ts], [amount], [scenario])
    _compromise_cards(cfg, world, rng, start_s, end_s, leaked, rows)
    _card_testing(cfg, world, rng, start_s, rows)

    frame = _to_frame(world, rows, start_s, end_s, history_tag(end))
    return SimulatedTransactions(frame, _chargebacks(frame, rng), cfg, end)


# ------------------------------------------------------------------------------------------------------ world
def _build_world(cfg: TransactionSimConfig, rng: np.random.Generator) -> _World:
    countries = sorted(COUNTRY_CENTROIDS)
    home_p = np.array([_HOME_WEIGHTS.get(c, 0) for c in countries], dtype=float)
    home_p /= home_p.sum()
    card_country = rng.choice(len(countries), size=cfg.n_cards, p=home_p)
    # Merchants: at least three per country, the rest where the cards live.
    base = np.repeat(np.arange(len(countries)), 3)
    extra_p = home_p * 0.9 + 0.1 / len(countries)
    extra = rng.choice(len(countries), size=max(cfg.n_merchants - len(base), 0), p=extra_p)
    merchant_country = np.concatenate([base, extra])[: max(cfg.n_merchants, len(base))]
    mcc_p = np.array([m[1] for m in _MCCS])
    merchant_mcc = rng.choice(len(_MCCS), size=len(merchant_country), p=mcc_p / mcc_p.sum())
    merchant_pop = rng.lognormal(0.0, 1.0, size=len(merchant_country))
    by_country = [np.flatnonzero(merchant_country == i) for i in range(len(countries))]
    world = _World(
        countries=countries,
        card_country=card_country,
        card_level=rng.lognormal(np.log(35.0), 0.5, size=cfg.n_cards),
        card_spread=rng.uniform(0.35, 0.8, size=cfg.n_cards),
        card_rate=rng.gamma(2.0, cfg.tx_per_card_day / 2.0, size=cfg.n_cards),
        card_hour=rng.uniform(9.0, 19.0, size=cfg.n_cards),
        card_favourites=np.empty((cfg.n_cards, 12), dtype=np.int64),
        merchant_country=merchant_country,
        merchant_mcc=merchant_mcc,
        merchant_pop=merchant_pop,
        by_country=by_country,
    )
    for c in range(len(countries)):
        cards = np.flatnonzero(card_country == c)
        if len(cards):
            world.card_favourites[cards] = _pick_in_country(world, rng, np.full(len(cards) * 12, c)).reshape(-1, 12)
    return world


def _pick_in_country(world: _World, rng: np.random.Generator, country: np.ndarray,
                     mcc_filter: frozenset[str] | None = None) -> np.ndarray:
    """One merchant per row, in the row's country, drawn by popularity (optionally among some MCCs)."""
    out = np.empty(len(country), dtype=np.int64)
    for c in np.unique(country):
        rows = np.flatnonzero(country == c)
        pool = world.by_country[c]
        if mcc_filter is not None:
            risky = pool[np.isin([_MCCS[m][0] for m in world.merchant_mcc[pool]], list(mcc_filter))]
            pool = risky if len(risky) else pool
        p = world.merchant_pop[pool] / world.merchant_pop[pool].sum()
        out[rows] = rng.choice(pool, size=len(rows), p=p)
    return out


# ---------------------------------------------------------------------------------------------------- genuine
def _genuine_activity(cfg: TransactionSimConfig, world: _World, rng: np.random.Generator,
                      start_s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    counts = rng.poisson(world.card_rate * cfg.days)
    card = np.repeat(np.arange(cfg.n_cards), counts)
    n = len(card)
    day = rng.integers(0, cfg.days, size=n)
    hour = np.where(rng.random(n) < 0.1, rng.uniform(0, 24, size=n),
                    (world.card_hour[card] + rng.normal(0.0, 3.0, size=n)) % 24)
    ts = start_s + day * DAY_SEC + (hour * 3600).astype(np.int64)
    # Merchants: mostly favourites, otherwise any merchant of the home country (or of the trip's country).
    country = world.card_country[card].copy()
    trip = rng.random(cfg.n_cards) < cfg.travel_share
    trip_start = start_s + rng.uniform(0, cfg.days * DAY_SEC, size=cfg.n_cards)
    trip_end = trip_start + rng.uniform(2, 8, size=cfg.n_cards) * DAY_SEC
    trip_country = rng.integers(0, len(world.countries), size=cfg.n_cards)
    on_trip = trip[card] & (ts >= trip_start[card]) & (ts < trip_end[card])
    country[on_trip] = trip_country[card[on_trip]]
    favourite = (rng.random(n) < 0.8) & ~on_trip
    merchant = _pick_in_country(world, rng, country)
    fav_slot = rng.integers(0, world.card_favourites.shape[1], size=n)
    merchant[favourite] = world.card_favourites[card[favourite], fav_slot[favourite]]
    return card, merchant, ts


def _amounts(world: _World, rng: np.random.Generator, card: np.ndarray, merchant: np.ndarray) -> np.ndarray:
    factor = np.array([m[2] for m in _MCCS])[world.merchant_mcc[merchant]]
    spread = world.card_spread[card]
    mu = np.log(world.card_level[card] * factor) - spread**2 / 2
    return np.maximum(np.round(rng.lognormal(mu, spread), 2), 0.3)


# ---------------------------------------------------------------------------------------------------- frauds
def _compromise_merchants(cfg: TransactionSimConfig, world: _World, rng: np.random.Generator, start_s: int,
                          card: np.ndarray, merchant: np.ndarray, ts: np.ndarray,
                          scenario: np.ndarray) -> list[tuple[int, int]]:
    """Mark every transaction at a compromised merchant during its compromise; return leaked (card, time)."""
    n = rng.poisson(cfg.compromised_merchants_per_day * cfg.days)
    p = world.merchant_pop / world.merchant_pop.sum()
    leaked: list[tuple[int, int]] = []
    for m in rng.choice(len(world.merchant_pop), size=n, p=p):
        begin = start_s + int(rng.uniform(0, cfg.days * DAY_SEC))
        stop = begin + int(rng.uniform(10, 30) * DAY_SEC)
        hit = np.flatnonzero((merchant == m) & (ts >= begin) & (ts < stop))
        scenario[hit] = "compromised_merchant"
        for i in hit[rng.random(len(hit)) < cfg.merchant_leak_prob]:
            leaked.append((int(card[i]), int(ts[i] + rng.uniform(1, 14) * DAY_SEC)))
    return leaked


def _compromise_cards(cfg: TransactionSimConfig, world: _World, rng: np.random.Generator, start_s: int,
                      end_s: int, leaked: list[tuple[int, int]], rows: _Rows) -> None:
    n = rng.poisson(cfg.compromised_cards_per_day * cfg.days)
    cards = rng.integers(0, cfg.n_cards, size=n)
    times = start_s + rng.uniform(0, cfg.days * DAY_SEC, size=n).astype(np.int64)
    cases = [(int(c), int(t)) for c, t in zip(cards, times, strict=True)] + leaked
    for c, t0 in cases:
        if t0 >= end_s:
            continue
        k = 2 + min(rng.poisson(3.0), 8)
        ts = t0 + np.sort(rng.uniform(0, rng.uniform(0.25, 3.0) * DAY_SEC, size=k)).astype(np.int64)
        home = int(world.card_country[c])
        if rng.random() < 0.65:
            options = [world.countries.index(x) for x in _FRAUD_COUNTRIES if world.countries.index(x) != home]
            country = np.full(k, rng.choice(options))
        else:
            country = np.full(k, home)
        risky = rng.random() < 0.6
        merchant = _pick_in_country(world, rng, country, _HIGH_RISK_MCCS if risky else None)
        amount = np.round(world.card_level[c] * rng.uniform(2.5, 10.0) * rng.lognormal(0, 0.3, size=k), 2)
        rows.add(np.full(k, c), merchant, ts, np.minimum(amount, 8_000.0), "compromised_card")


def _card_testing(cfg: TransactionSimConfig, world: _World, rng: np.random.Generator, start_s: int,
                  rows: _Rows) -> None:
    n = rng.poisson(cfg.card_testing_per_day * cfg.days)
    for c, t0 in zip(rng.integers(0, cfg.n_cards, size=n),
                     start_s + rng.uniform(0, cfg.days * DAY_SEC, size=n).astype(np.int64), strict=True):
        k_small = int(rng.integers(3, 9))
        k_large = int(rng.integers(1, 3))
        small_ts = t0 + np.cumsum(rng.integers(20, 400, size=k_small))
        large_ts = small_ts[-1] + np.cumsum(rng.integers(300, 3600, size=k_large))
        country = np.full(k_small + k_large, rng.integers(0, len(world.countries)))
        if rng.random() < 0.5:
            country[:] = world.card_country[c]
        merchant = np.concatenate([_pick_in_country(world, rng, country[:k_small], _ONLINE_MCCS),
                                   _pick_in_country(world, rng, country[k_small:], _HIGH_RISK_MCCS)])
        amount = np.concatenate([np.round(rng.uniform(0.5, 4.99, size=k_small), 2),
                                 np.round(rng.uniform(150.0, 2_500.0, size=k_large), 2)])
        rows.add(np.full(k_small + k_large, c), merchant, np.concatenate([small_ts, large_ts]), amount,
                 "card_testing")


# ----------------------------------------------------------------------------------------------------- output
def _to_frame(world: _World, rows: _Rows, start_s: int, end_s: int, tag: str) -> pd.DataFrame:
    card = np.concatenate(rows.card)
    merchant = np.concatenate(rows.merchant)
    ts = np.concatenate(rows.ts)
    keep = (ts >= start_s) & (ts < end_s)
    card, merchant, ts = card[keep], merchant[keep], ts[keep]
    amount = np.concatenate(rows.amount)[keep]
    scenario = np.concatenate(rows.scenario)[keep]
    order = np.lexsort((amount, merchant, card, ts))
    card, merchant, ts, amount, scenario = card[order], merchant[order], ts[order], amount[order], scenario[order]
    mcc_codes = np.array([m[0] for m in _MCCS], dtype=object)
    countries = np.array(world.countries, dtype=object)
    n = len(ts)
    return pd.DataFrame({
        "transaction_id": [f"tx_{tag}_{i:08d}" for i in range(n)],
        "timestamp": pd.to_datetime(ts, unit="s", utc=True),
        "card_id": [f"card_{c:08d}" for c in card],
        "merchant_id": [f"merchant_{m:05d}" for m in merchant],
        "mcc_code": mcc_codes[world.merchant_mcc[merchant]],
        "country_code": countries[world.merchant_country[merchant]],
        "transaction_amount": amount.astype(float),
        "is_fraud": scenario != GENUINE,
        "scenario": scenario,
    })


def _chargebacks(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One fraud label per fraudulent transaction, arriving 1-20 days later (mean about a week)."""
    frauds = frame.loc[frame["is_fraud"]].reset_index(drop=True)
    delay_days = np.clip(1.0 + rng.gamma(2.0, 2.8, size=len(frauds)), 1.0, 20.0)
    labels = pd.DataFrame({
        "transaction_id": frauds["transaction_id"],
        "card_id": frauds["card_id"],
        "merchant_id": frauds["merchant_id"],
        "mcc_code": frauds["mcc_code"],
        "transaction_timestamp": frauds["timestamp"],
        "timestamp": frauds["timestamp"] + pd.to_timedelta(np.round(delay_days * DAY_SEC), unit="s"),
        "is_fraud": True,
    })
    return labels.sort_values(["timestamp", "transaction_id"], kind="stable").reset_index(drop=True)
