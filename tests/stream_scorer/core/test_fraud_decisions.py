"""The C fraud-decision builder against its Python definition."""

from __future__ import annotations

import math
import random
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.decisions import FraudDecision, to_json
from stream_scorer.core import fraud_decisions as fd
from stream_scorer.core.explain import fraud_explanation, phrase_table
from stream_scorer.core.features import FRAUD_FEATURE_NAMES

EDGE_VALUES = [0.0, -0.0, 0.5, 1.5, 2.5, 0.125, 0.005, 1.005, 999.995, 999_999.5, 1e15, -1e15, 123456789012.345,
               1e300, -2.5, float("inf"), float("-inf"), float("nan"), -float("nan"), 5e-324, 0.0004999, 0.9995]
EDGE_SCORES = [0.0, 1.0, 0.5, 0.9, 0.85, 0.0078125, 0.4999995, 0.5 - 1e-12, 0.8999995, 0.85 - 5e-7, 1 / 3,
               2 ** -20, 0.9999995, 5e-324, 0.1234565]
NAMES_WITH_AN_UNKNOWN = (*FRAUD_FEATURE_NAMES, "not_a_phrase")


def _value(rng: random.Random) -> float:
    return rng.choice([rng.choice(EDGE_VALUES), rng.uniform(-1e7, 1e7), rng.uniform(0, 1),
                       round(rng.uniform(0, 5e4), 2), rng.expovariate(1e-3) * rng.choice([1, -1]),
                       float(rng.randint(0, 5000)), rng.randint(0, 2000) / 1000])


def _inputs(rng: random.Random, n: int, names: tuple[str, ...], degraded: bool) -> dict[str, Any]:
    now = time.time()
    models = [("v1", 0.9, 0.5), ("v2-challenger", 0.85, 0.3), ("v3", 1, 0)]  # int thresholds too
    return dict(
        scores=[rng.choice([rng.random(), rng.choice(EDGE_SCORES), rng.randint(0, 10 ** 7) / 2 ** 23])
                for _ in range(n)],
        served=[rng.choice(models) for _ in range(n)],
        factors=[rng.sample(range(len(names)), rng.randint(0, 3)) for _ in range(n)],
        rows=[[_value(rng) for _ in names] for _ in range(n)],
        names=names,
        event_ids=[f"tx-{rng.getrandbits(40):x}" for _ in range(n)],
        times=[now - rng.uniform(-3600, 40 * 86400) for _ in range(n)],
        updated_at=[rng.choice([None, now - rng.uniform(0, 1e5), now + rng.uniform(0, 5), int(now) - 7, now])
                    for _ in range(n)],
        missing=[rng.choice([[], ["merchant_tx_count_28d", "merchant_fraud_rate_28d"]]) for _ in range(n)],
        decision_ids=[f"{rng.getrandbits(128):032x}" for _ in range(n)],
        now=now, scored_at=datetime.fromtimestamp(now, UTC), latency_ms=round(rng.uniform(0, 9), 3),
        degraded=degraded)


def test_the_c_extension_is_what_runs_when_built() -> None:
    assert fd.NATIVE  # tests run on an installed package, whose install builds it (setup.py)


@pytest.mark.parametrize("names", [FRAUD_FEATURE_NAMES, NAMES_WITH_AN_UNKNOWN])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_native_decisions_equal_the_python_definition(names: tuple[str, ...], seed: int) -> None:
    rng = random.Random(seed)
    for degraded in (False, True):
        kwargs = _inputs(rng, 3000, names, degraded)
        native_out, native_actions = fd.fraud_decisions(**kwargs)
        python_out, python_actions = fd.fraud_decisions_py(**kwargs)
        assert native_actions == python_actions
        for c, p in zip(native_out, python_out, strict=True):
            assert type(c) is FraudDecision
            assert c == p and c.__pydantic_fields_set__ == p.__pydantic_fields_set__
            assert to_json(c) == to_json(p)  # also tells -0.0 from 0.0, and an int from a float
            assert list(c.__dict__) == list(p.__dict__)


def test_native_explanations_equal_the_definition() -> None:
    rng = random.Random(7)
    table = phrase_table(NAMES_WITH_AN_UNKNOWN)
    for _ in range(20_000):
        risk = rng.choice(["low", "medium", "high"])
        score = rng.choice([rng.random(), rng.choice(EDGE_SCORES), float("nan")])
        values = [_value(rng) for _ in NAMES_WITH_AN_UNKNOWN]
        factors = rng.sample(range(len(NAMES_WITH_AN_UNKNOWN)), rng.randint(0, 4))
        expected = fraud_explanation(risk, score, NAMES_WITH_AN_UNKNOWN, values, factors)
        assert fd._native is not None
        assert fd._native.explanation(risk, score, values, factors, table) == expected, (risk, score, factors)


def test_rounding_follows_python_on_ties_and_near_ties() -> None:
    """round(x, 6) and round(x, 3) by the decimal text: exact binary ties go to even, as Python's."""
    rng = random.Random(9)
    scores = [k / 2 ** 20 for k in range(0, 2 ** 20, 97)] + [rng.random() for _ in range(20_000)]
    kwargs = _inputs(rng, len(scores), FRAUD_FEATURE_NAMES, False)
    kwargs["scores"] = scores
    kwargs["updated_at"] = [kwargs["now"] - k / 2 ** 12 for k in range(len(scores))]
    native_out, _ = fd.fraud_decisions(**kwargs)
    for score, decision, updated in zip(scores, native_out, kwargs["updated_at"], strict=True):
        assert decision.fraud_score == round(score, 6)
        assert decision.confidence == round(max(round(score, 6), 1 - round(score, 6)), 6)
        assert decision.feature_freshness_sec == round(max(0.0, kwargs["now"] - updated), 3)


def test_rows_of_unequal_length_are_refused() -> None:
    kwargs = _inputs(random.Random(1), 5, FRAUD_FEATURE_NAMES, False)
    kwargs["decision_ids"] = kwargs["decision_ids"][:4]
    with pytest.raises(ValueError, match="one item per row"):
        fd.fraud_decisions(**kwargs)


def _near_ties(rng: random.Random) -> list[float]:
    """Exact binary ties and decimal near-ties at every precision the decisions use, their neighbours, and
    magnitudes around where the C leaves its integer shortcut for snprintf."""
    values: list[float] = []
    for _ in range(3000):
        k = rng.randint(1, 14)
        values.append(rng.randint(0, 2 ** 20) / 2 ** k)
        p = rng.choice([0, 1, 2, 3, 6])
        near = (rng.randint(0, 10 ** 7) + 0.5) / 10 ** p
        values += [near, math.nextafter(near, math.inf), math.nextafter(near, -math.inf)]
        big = 2.0 ** 40 / 10 ** p * rng.uniform(0.98, 1.02)
        values += [big, rng.uniform(0, 1e-6), rng.uniform(0, 1) * 10 ** rng.randint(-3, 12), rng.uniform(1e12, 1e15)]
    return values + [-v for v in values] + [0.0, -0.0, 1e16, 2.0 ** 53 + 1]


def test_rounding_and_formatting_equal_python_near_ties() -> None:
    rng = random.Random(21)
    values = _near_ties(rng)
    table = phrase_table(FRAUD_FEATURE_NAMES)
    assert fd._native is not None
    coded = [j for j, (_, code, _, _) in enumerate(table) if code]  # every format the phrases use
    for start in range(0, len(values), len(FRAUD_FEATURE_NAMES)):
        row = [values[(start + j) % len(values)] for j in range(len(FRAUD_FEATURE_NAMES))]
        factors = rng.sample(coded, 3)
        expected = fraud_explanation("high", row[0], FRAUD_FEATURE_NAMES, row, factors)
        assert fd._native.explanation("high", row[0], row, factors, table) == expected, (row, factors)
    scores = [abs(v) % 1.0 for v in values]
    kwargs = _inputs(rng, len(scores), FRAUD_FEATURE_NAMES, False)
    kwargs["scores"] = scores
    kwargs["updated_at"] = [kwargs["now"] - abs(v) for v in values]
    native_out, _ = fd.fraud_decisions(**kwargs)
    python_out, _ = fd.fraud_decisions_py(**kwargs)
    assert [to_json(d) for d in native_out] == [to_json(d) for d in python_out]


@pytest.mark.parametrize(("field", "bad", "error"), [
    ("updated_at", ["x"], TypeError), ("factors", [[99]], IndexError), ("served", [("v1", "high", 0.5)], TypeError),
])
def test_bad_rows_raise_their_own_error(field: str, bad: list[Any], error: type[Exception]) -> None:
    kwargs = _inputs(random.Random(2), 1, FRAUD_FEATURE_NAMES, False)
    kwargs[field] = bad
    with pytest.raises(error):
        fd.fraud_decisions(**kwargs)
