"""Live synthetic traffic for demos and benchmarks: ``stream-scorer produce transactions|sessions|mixed``.

Cards, merchants, users and items are drawn from the simulated history in ``data/`` when it exists (so the
live events continue the materialized features); timestamps are the time of sending.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer

from stream_scorer.config import Settings
from stream_scorer.core.geo import COUNTRY_CENTROIDS

_CATEGORIES = ["electronics", "fashion", "home", "sports", "beauty", "books", "toys", "grocery"]


@dataclass
class _Population:
    cards: list[tuple[str, str, float]]  # card, usual country, typical amount
    merchants: list[tuple[str, str, str]]  # merchant, mcc, country
    users: list[str]
    items: list[tuple[str, str, float]]  # item, category, price


def _load_population(data_dir: str, rng: random.Random) -> _Population:
    cards: list[tuple[str, str, float]] = []
    merchants: list[tuple[str, str, str]] = []
    users: list[str] = []
    items: list[tuple[str, str, float]] = []
    tx_files = sorted(glob.glob(f"{data_dir}/**/*transactions*.parquet", recursive=True))
    session_files = sorted(glob.glob(f"{data_dir}/**/*sessions*.parquet", recursive=True))
    if tx_files or session_files:
        import pandas as pd

        if tx_files:
            tx = pd.read_parquet(tx_files[0])
            by_card = tx.groupby("card_id").agg(country=("country_code", lambda s: s.mode().iat[0]),
                                                amount=("transaction_amount", "median"))
            cards = [(str(c), str(r.country), float(r.amount)) for c, r in by_card.iterrows()]
            m = tx.drop_duplicates("merchant_id")
            merchants = list(zip(m["merchant_id"].astype(str), m["mcc_code"].astype(str),
                                 m["country_code"].astype(str), strict=True))
        if session_files:
            s = pd.read_parquet(session_files[0])
            users = s["user_id"].astype(str).unique().tolist()
            it = s.drop_duplicates("item_id")
            items = list(zip(it["item_id"].astype(str), it["item_category"].astype(str),
                             it["item_price"].astype(float), strict=True))
    if not cards:
        cards = [(f"card_{i:08d}", "US", rng.lognormvariate(3.5, 0.8)) for i in range(1, 1001)]
    if not merchants:
        merchants = [(f"merchant_{i:05d}", rng.choice(["5411", "5812", "5999", "4111", "5732"]), "US")
                     for i in range(1, 201)]
    if not users:
        users = [f"user_{i:08d}" for i in range(1, 1001)]
    if not items:
        items = [(f"item_{c}_{i:03d}", c, round(rng.lognormvariate(3.5, 1.0), 2)) for c in _CATEGORIES
                 for i in range(1, 51)]
    return _Population(cards, merchants, users, items)


def transactions(pop: _Population, rng: random.Random, fraud_share: float) -> Iterator[tuple[str, dict[str, object]]]:
    countries = sorted(COUNTRY_CENTROIDS)
    while True:
        card, country, typical = rng.choice(pop.cards)
        merchant, mcc, _ = rng.choice(pop.merchants)
        event: dict[str, object] = {
            "transaction_id": uuid.uuid4().hex, "card_id": card, "merchant_id": merchant, "mcc_code": mcc,
            "country_code": country, "transaction_amount": round(max(0.5, rng.gauss(typical, typical / 3)), 2),
        }
        if rng.random() < fraud_share:  # a burst on one card: card testing, then a large foreign purchase
            for _ in range(rng.randint(3, 6)):
                yield card, {**event, "transaction_id": uuid.uuid4().hex,
                             "transaction_amount": round(rng.uniform(0.5, 3.0), 2),
                             "timestamp": datetime.now(UTC).isoformat()}
            event["country_code"] = rng.choice(countries)
            event["transaction_amount"] = round(typical * rng.uniform(5, 15), 2)
        event["timestamp"] = datetime.now(UTC).isoformat()
        yield card, event


def sessions(pop: _Population, rng: random.Random) -> Iterator[tuple[str, dict[str, object]]]:
    while True:
        user = rng.choice(pop.users)
        session = uuid.uuid4().hex[:16]
        focus = rng.choice(pop.items)[1]
        for _ in range(rng.randint(2, 10)):
            pool = [i for i in pop.items if i[1] == focus] if rng.random() < 0.7 else pop.items
            item, category, price = rng.choice(pool)
            roll = rng.random()
            kind = "purchase" if roll < 0.03 else "cart" if roll < 0.12 else "view"
            yield user, {"event_id": uuid.uuid4().hex, "user_id": user, "session_id": session, "item_id": item,
                         "item_category": category, "item_price": price, "event_type": kind,
                         "timestamp": datetime.now(UTC).isoformat()}


async def produce(settings: Settings, kind: str, *, rate: float, count: int, data_dir: str, fraud_share: float,
                  seed: int | None, progress: bool) -> int:
    rng = random.Random(seed)
    pop = _load_population(data_dir, rng)
    streams: list[tuple[str, Iterator[tuple[str, dict[str, object]]]]] = []
    if kind in ("transactions", "mixed"):
        streams.append((settings.topics.transactions, transactions(pop, rng, fraud_share)))
    if kind in ("sessions", "mixed"):
        streams.append((settings.topics.sessions, sessions(pop, rng)))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, linger_ms=5, acks="all")
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        pending = []
        while count == 0 or sent < count:
            topic, stream = streams[sent % len(streams)]
            key, event = next(stream)
            pending.append(await producer.send(topic, orjson.dumps(event), key=key.encode()))
            sent += 1
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.gather(*pending)
                    pending.clear()
                    await asyncio.sleep(ahead)
            if progress and sent % 1000 == 0:
                elapsed = time.monotonic() - started
                print(f"produced {sent} events ({sent / elapsed:,.0f}/s)", flush=True)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def run_producer(settings: Settings, args: argparse.Namespace) -> int:
    try:
        sent = asyncio.run(produce(settings, args.kind, rate=args.rate, count=args.count, data_dir=args.data_dir,
                                   fraud_share=args.fraud_share, seed=args.seed, progress=not args.quiet))
    except KeyboardInterrupt:
        return 0
    print(f"produced {sent} events")
    return 0
