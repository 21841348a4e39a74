"""Seeded simulator of shopping sessions (views, cart adds, purchases).

Users belong to a segment (how often they shop, how likely they buy, their price level and price sensitivity)
and have category affinities. Items have a category, a price and a latent appeal that drives both popularity and
conversion. A session focuses on one category, views items (sometimes the same one again), adds some to the cart
and checks out part of the cart at the end. Whether a viewed item gets bought depends on the segment, the user's
affinity for its category, the item's appeal, its price relative to the user's level and how often it was viewed
in the session: signals the personalization features can see in history.

The training label is conversion: a ``view`` whose item the user purchases later in the same session.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from training.simulate import default_history_end, history_tag

DAY_SEC = 86_400
CART_OFFSET = 5.5
"""Shifts the cart-add probability (a logistic of the purchase utility): sets the overall conversion rate."""
# category: (items, median price)
CATEGORIES: dict[str, tuple[int, float]] = {
    "electronics": (120, 250.0), "fashion": (200, 45.0), "home": (150, 60.0), "beauty": (100, 25.0),
    "sports": (100, 55.0), "books": (150, 15.0), "toys": (80, 30.0), "grocery": (100, 8.0),
}


@dataclass(frozen=True, slots=True)
class Segment:
    name: str
    share: float
    sessions_per_day: float
    buy_bias: float
    price_level: float
    """Multiple of the category's median price the user is comfortable with."""
    price_sensitivity: float


SEGMENTS: tuple[Segment, ...] = (
    Segment("high_value_engaged", 0.15, 0.6, 0.6, 1.8, 0.4),
    Segment("bargain_hunter", 0.25, 0.35, 0.0, 0.6, 1.6),
    Segment("casual_browser", 0.45, 0.2, -0.8, 1.0, 0.9),
    Segment("occasional", 0.15, 0.08, -0.3, 1.0, 0.9),
)


@dataclass(frozen=True, slots=True)
class SessionSimConfig:
    n_users: int = 3_000
    days: int = 35
    end: datetime | None = None
    """Exclusive end of the history; default: the start of the current UTC hour."""
    seed: int = 7
    mean_views_per_session: float = 6.0

    def resolved_end(self) -> datetime:
        return (self.end or default_history_end()).astimezone(UTC)

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["end"] = self.resolved_end().isoformat()
        return d


@dataclass(frozen=True, slots=True)
class SimulatedSessions:
    events: pd.DataFrame
    """``event_id, timestamp, user_id, session_id, item_id, item_category, item_price, event_type``."""
    config: SessionSimConfig
    end: datetime


@dataclass(slots=True)
class _Catalogue:
    item_ids: list[str]
    category: np.ndarray
    price: np.ndarray
    appeal: np.ndarray
    by_category: list[tuple[np.ndarray, np.ndarray]]
    """Per category: item indices and the cumulative distribution of their popularity."""


def simulate_sessions(config: SessionSimConfig | None = None) -> SimulatedSessions:
    """Generate the history; identical output for identical ``config`` (``end`` included)."""
    cfg = config or SessionSimConfig()
    end = cfg.resolved_end()
    rng = np.random.default_rng(cfg.seed)
    cats = list(CATEGORIES)
    catalogue = _build_catalogue(rng, cats)
    segment = rng.choice(len(SEGMENTS), size=cfg.n_users, p=[s.share for s in SEGMENTS])
    affinity = rng.dirichlet(np.full(len(cats), 0.5), size=cfg.n_users)
    end_s = int(end.timestamp())
    start_s = end_s - cfg.days * DAY_SEC
    rates = np.array([SEGMENTS[s].sessions_per_day for s in segment])
    counts = rng.poisson(rates * cfg.days)
    rows: list[tuple[int, int, int, int, str]] = []  # (ts, user, session, item, type)
    for session_no, user in enumerate(np.repeat(np.arange(cfg.n_users), counts)):
        start = start_s + int(rng.uniform(0, cfg.days * DAY_SEC - 3 * 3600))
        _one_session(rng, cfg, catalogue, SEGMENTS[segment[user]], affinity[user], int(user), session_no, start,
                     rows)
    return SimulatedSessions(_to_frame(rows, catalogue, cats, start_s, end_s, history_tag(end)), cfg, end)


def _build_catalogue(rng: np.random.Generator, cats: list[str]) -> _Catalogue:
    item_ids: list[str] = []
    category: list[int] = []
    price: list[float] = []
    appeal: list[float] = []
    by_category: list[tuple[np.ndarray, np.ndarray]] = []
    for c, name in enumerate(cats):
        n, median = CATEGORIES[name]
        first = len(item_ids)
        item_ids.extend(f"item_{name}_{i:03d}" for i in range(1, n + 1))
        category.extend([c] * n)
        price.extend(np.round(rng.lognormal(np.log(median), 0.6, size=n), 2).tolist())
        a = rng.normal(0.0, 0.7, size=n)
        appeal.extend(a.tolist())
        pop = np.exp(0.8 * a + rng.normal(0.0, 1.0, size=n))
        by_category.append((np.arange(first, first + n), np.cumsum(pop / pop.sum())))
    return _Catalogue(item_ids, np.array(category), np.array(price), np.array(appeal), by_category)


def _one_session(rng: np.random.Generator, cfg: SessionSimConfig, cat: _Catalogue, seg: Segment,
                 affinity: np.ndarray, user: int, session: int, start: int,
                 rows: list[tuple[int, int, int, int, str]]) -> None:
    affinity_cdf = np.cumsum(affinity)
    focus = _draw(affinity_cdf, rng.random())
    n_views = min(1 + int(rng.geometric(1.0 / cfg.mean_views_per_session)), 30)
    t = start
    viewed: dict[int, int] = {}
    cart: list[int] = []
    for _ in range(n_views):
        if viewed and rng.random() < 0.25:
            item = list(viewed)[int(rng.integers(len(viewed)))]
        else:
            c = focus if rng.random() < 0.7 else _draw(affinity_cdf, rng.random())
            items, cdf = cat.by_category[c]
            item = int(items[_draw(cdf, rng.random())])
        if item in cart:
            continue
        viewed[item] = viewed.get(item, 0) + 1
        rows.append((t, user, session, item, "view"))
        t += 5 + int(rng.exponential(60.0))
        c = int(cat.category[item])
        median = CATEGORIES[_name(c)][1]
        utility = (seg.buy_bias + 1.2 * math.log(affinity[c] * len(affinity) + 1e-3) + cat.appeal[item]
                   - seg.price_sensitivity * math.log(cat.price[item] / (median * seg.price_level))
                   + 0.7 * (viewed[item] - 1) + (0.8 if c == focus else 0.0))
        if rng.random() < 1.0 / (1.0 + math.exp(-(utility - CART_OFFSET))):
            cart.append(item)
            rows.append((t, user, session, item, "cart"))
            t += 5 + int(rng.exponential(40.0))
    for item in cart:
        if rng.random() < 0.65:
            rows.append((t, user, session, item, "purchase"))
            t += 3 + int(rng.exponential(10.0))


_CATEGORY_NAMES = list(CATEGORIES)


def _draw(cdf: np.ndarray, u: float) -> int:
    return min(int(np.searchsorted(cdf, u, side="right")), len(cdf) - 1)


def _name(c: int) -> str:
    return _CATEGORY_NAMES[c]


def _to_frame(rows: list[tuple[int, int, int, int, str]], cat: _Catalogue, cats: list[str], start_s: int,
              end_s: int, tag: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["ts", "user", "session", "item", "event_type"])
    frame = frame[(frame["ts"] >= start_s) & (frame["ts"] < end_s)]
    frame = frame.sort_values(["ts", "user", "session"], kind="stable").reset_index(drop=True)
    item = frame["item"].to_numpy()
    names = np.array(cats, dtype=object)
    return pd.DataFrame({
        "event_id": [f"ev_{tag}_{i:09d}" for i in range(len(frame))],
        "timestamp": pd.to_datetime(frame["ts"].to_numpy(), unit="s", utc=True),
        "user_id": [f"user_{u:08d}" for u in frame["user"]],
        "session_id": [f"sess_{tag}_{s:07d}" for s in frame["session"]],
        "item_id": np.array(cat.item_ids, dtype=object)[item],
        "item_category": names[cat.category[item]],
        "item_price": cat.price[item].astype(float),
        "event_type": frame["event_type"].to_numpy(),
    })


def conversion_labels(events: pd.DataFrame) -> pd.Series:
    """1 for a ``view`` whose item the user purchases later in the same session, else 0 (for every row)."""
    purchases = events.loc[events["event_type"] == "purchase"]
    last_purchase = purchases.groupby(["session_id", "item_id"], sort=False)["timestamp"].max()
    keys = pd.MultiIndex.from_arrays([events["session_id"], events["item_id"]])
    bought_at = pd.Series(last_purchase.reindex(keys).to_numpy(), index=events.index)
    later = bought_at.notna() & (bought_at > events["timestamp"])
    return ((events["event_type"] == "view") & later).astype(np.int8)
