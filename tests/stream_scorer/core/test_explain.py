"""Top risk factors per row, computed for a whole batch at once."""

from __future__ import annotations

import random

import numpy as np

from stream_scorer.core import explain
from stream_scorer.core.explain import _PHRASES, MIN_CONTRIBUTION, TOP_FACTORS, describe, reasons_py, top_factors
from stream_scorer.core.features import FRAUD_FEATURE_NAMES


def _one_row(contributions: np.ndarray) -> list[int]:
    """The definition, row by row: largest positive contributions first, ties by feature order."""
    ranked = sorted(range(len(contributions)), key=lambda j: (-contributions[j], j))[:TOP_FACTORS]
    return [j for j in ranked if contributions[j] >= MIN_CONTRIBUTION]


def test_batch_equals_the_row_by_row_definition() -> None:
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(0, 0.3, size=(400, 22)), 2)  # rounding makes ties
    x[7] = 0.0  # nothing pushes the score up: no factor
    x[8, [3, 9]] = 0.9  # a tie at the top keeps feature order
    assert top_factors(x) == [_one_row(row) for row in x]
    assert top_factors(x)[7] == [] and top_factors(x)[8][:2] == [3, 9]
    assert top_factors(np.empty((0, 22))) == []


def test_a_few_rows_sorted_in_python_give_the_same_factors() -> None:
    rng = np.random.default_rng(6)
    x = np.round(rng.normal(0, 0.3, size=(200, 22)), 2)
    x[3, [3, 9]] = 0.9
    x[4] = 0.0
    for start in range(0, len(x), 5):  # batches of 5 take the small path
        chunk = x[start:start + 5]
        assert top_factors(chunk) == [_one_row(row) for row in chunk]
    assert top_factors(x[3:4])[0][:2] == [3, 9] and top_factors(x[4:5]) == [[]]


def test_phrases_read_as_their_templates() -> None:
    for name, template in _PHRASES.items():
        for value in (0.0, 1.0, 3.0, 0.0345, 1234.5678, 1e6, -2.5):
            assert describe(name, value) == template.format(v=value), (name, value)
    assert describe("not_a_phrase", 2.5) == "not_a_phrase = 2.5"


def test_the_c_extension_is_what_runs_when_built() -> None:
    assert explain.NATIVE


def test_native_reasons_equal_the_python_definition() -> None:
    rng = random.Random(3)
    names = (*FRAUD_FEATURE_NAMES, "not_a_phrase")
    edges = [0.0, -0.0, 0.5, 1.5, 2.5, 0.125, 0.005, 1.005, 999.995, 999_999.5, 1e15, -1e15, 123456789012.345,
             1e300, -2.5, float("inf"), float("-inf"), float("nan"), -float("nan"), 5e-324, 0.0004999, 0.9995]
    for _ in range(20_000):
        values = [rng.choice([rng.choice(edges), rng.uniform(-1e7, 1e7), rng.uniform(0, 1),
                              round(rng.uniform(0, 5e4), 2), rng.expovariate(1e-3) * rng.choice([1, -1]),
                              float(rng.randint(0, 5000)), rng.randint(0, 2000) / 1000])
                  for _ in names]
        factors = rng.sample(range(len(names)), rng.randint(0, 4))
        assert explain.reasons(names, values, factors) == reasons_py(names, values, factors), (values, factors)


def test_reasons_read_values_of_any_sequence_and_factors_of_any_order() -> None:
    values = np.arange(len(FRAUD_FEATURE_NAMES), dtype=np.float64) * 1111.5
    for factors in ([0, 7, 21], (20, 0), []):
        assert explain.reasons(FRAUD_FEATURE_NAMES, values, factors) == \
            reasons_py(FRAUD_FEATURE_NAMES, values, factors)
    assert explain.reasons(FRAUD_FEATURE_NAMES, [1234.5] * 22, [0]) == "amount of 1,234.50"
