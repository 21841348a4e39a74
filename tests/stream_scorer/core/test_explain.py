"""Top risk factors per row, computed for a whole batch at once."""

from __future__ import annotations

import numpy as np
import pytest

from stream_scorer.core import explain
from stream_scorer.core.explain import _PHRASES, MIN_CONTRIBUTION, TOP_FACTORS, describe, top_factors


def _one_row(contributions: np.ndarray, limit: int = TOP_FACTORS) -> list[int]:
    """The definition, row by row: largest positive contributions first, ties by feature order."""
    ranked = sorted(range(len(contributions)), key=lambda j: (-contributions[j], j))[:limit]
    return [j for j in ranked if contributions[j] >= MIN_CONTRIBUTION]


@pytest.fixture(params=["c", "numpy"])
def sort_in(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs on the C extension's top_factors and on numpy's sort (the path without it)."""
    if request.param == "numpy":
        monkeypatch.setattr(explain, "_native", None)
    else:
        assert explain._native is not None
    return str(request.param)


def test_batch_equals_the_row_by_row_definition(sort_in: str) -> None:
    rng = np.random.default_rng(5)
    x = np.round(rng.normal(0, 0.3, size=(400, 22)), 2)  # rounding makes ties
    x[7] = 0.0  # nothing pushes the score up: no factor
    x[8, [3, 9]] = 0.9  # a tie at the top keeps feature order
    assert top_factors(x) == [_one_row(row) for row in x]
    assert top_factors(x)[7] == [] and top_factors(x)[8][:2] == [3, 9]
    assert top_factors(np.empty((0, 22))) == []


def test_a_few_rows_sorted_in_python_give_the_same_factors(sort_in: str) -> None:
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



def test_factors_from_any_matrix_and_nan_never_a_factor(sort_in: str) -> None:
    rng = np.random.default_rng(8)
    x = np.round(rng.normal(0, 0.3, size=(300, 22)), 2)
    x[5, 3] = np.nan
    x[6, :] = np.nan
    expected = [_one_row(np.where(np.isnan(row), -np.inf, row)) for row in x]
    assert top_factors(x) == expected
    assert top_factors(np.asfortranarray(x)) == expected  # any layout
    wider = np.hstack([x, np.zeros((len(x), 1))])
    assert top_factors(wider[:, :-1]) == expected  # a view: the model's output without its last column
    assert top_factors(x[::-1])[::-1] == expected
    assert top_factors(x.astype(np.float32).astype(np.float64)[:, :]) == top_factors(x.astype(np.float32))
    assert top_factors(x, limit=0) == [[] for _ in x]
    assert max(len(f) for f in top_factors(x, limit=5)) == 5
    assert top_factors(x[5:7]) == expected[5:7]  # a few rows: sorted one by one
    assert top_factors(np.array([[0.1, np.nan, 0.2, 0.3]])) == [[3, 2, 0]]
    assert top_factors(x, limit=70) == [_one_row(np.where(np.isnan(r), -np.inf, r), limit=70) for r in x]
