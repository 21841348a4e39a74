"""The C card-window aggregation against its Python definition: bit-identical on every input, same errors."""

from __future__ import annotations

import os
import random
import time
from types import ModuleType

import numpy as np
import pytest

from stream_scorer.core import features, window
from stream_scorer.core.feature_inputs import DailyCounts, FraudState
from stream_scorer.core.features import CARD_WINDOW_SEC, DAY, HOUR, SMALL_AMOUNT, fraud_features
from stream_scorer.core.window import (
    CardWindow,
    aggregate_card_window_py,
    card_log_entry,
    card_member,
    read_card_log_py,
)

native: ModuleType
if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    from stream_scorer.core import _window as native  # `make install` builds it: under CI, not built is a failure
else:
    native = pytest.importorskip("stream_scorer.core._window", reason="the C extension is not built")
CONSTANTS = (CARD_WINDOW_SEC, DAY, HOUR, SMALL_AMOUNT)


def both(history: CardWindow, ts: float, country: str | None) -> str:
    """Both results, compared by ``repr`` (floats bit for bit, ints stay ints, None stays None)."""
    ours = native.aggregate_card_window(history, ts, country, *CONSTANTS)
    definition = aggregate_card_window_py(history, ts, country, *CONSTANTS)
    assert repr(ours) == repr(definition), (history, ts, country)
    return repr(ours)


def _random_window(rng: random.Random, ts: float) -> CardWindow:
    """Members in and out of the window, ties in time and in id, prefixes, non-ASCII ids, empty countries,
    amounts of every magnitude, times as Redis strings or floats."""
    tids = ["a", "ab", "a0", "b", "é1", "tx-" + str(rng.randrange(10**6))]
    edges = [ts, ts - CARD_WINDOW_SEC, ts - DAY, ts - HOUR, ts + 5.0, ts - CARD_WINDOW_SEC - 0.001]
    flat: list[str | float] = []
    shared_time = ts - rng.uniform(1, DAY)
    for _ in range(rng.choice([0, 1, 3, 8, 70, 200])):
        t = rng.choice([rng.uniform(ts - 8 * DAY, ts + DAY), rng.uniform(ts - 2 * HOUR, ts), shared_time,
                        rng.choice(edges)])
        amount = rng.choice([round(rng.uniform(0, 10), 2), rng.uniform(0, 1e6), 4.999999999999999, 5.0, 0.1])
        member = card_member(rng.choice(tids), amount, rng.choice(["US", "FR", "", "DE", "ÜÜ"]),
                             rng.choice(["m1", "m2", "m10", "mé", "m|x"]))
        flat += (member, rng.choice([repr(t), f"{t:.17g}", t, np.float64(t)]))  # Redis writes scores as %.17g
    return flat


def test_the_c_extension_is_what_runs_when_built() -> None:
    assert window.NATIVE
    assert window.aggregate_card_window is native.aggregate_card_window


def test_random_windows_aggregate_bit_identically() -> None:
    rng = random.Random(11)
    now = time.time()
    outcomes = set()
    for _ in range(3000):
        ts = now - rng.uniform(0, 30 * DAY)
        result = both(_random_window(rng, ts), ts, rng.choice([None, "", "US", "FR", "JP", "ÜÜ"]))
        outcomes.add(result.endswith("None)"))
    assert outcomes == {True, False}  # windows with and without a usual country


def test_card_logs_read_alike_in_c_and_python() -> None:
    """Random logs (entries in and out of the range, at its edges, non-ASCII, empty) read as the same window and
    update time, bit for bit; the window is what the log's entries in ``[low, high)`` are, in order."""
    rng = random.Random(5)
    now = time.time()
    assert window.read_card_log is native.read_card_log
    kept = 0
    for _ in range(2000):
        flat = list(_random_window(rng, now))
        entries = [card_log_entry(str(flat[j]), float(flat[j + 1])) for j in range(0, len(flat), 2)]
        log = "\n".join([repr(now - rng.uniform(0, 100)), *entries])
        low, high = now - rng.choice([CARD_WINDOW_SEC, DAY, 0.0]), now + rng.choice([0.0, DAY])
        ours = native.read_card_log(log, low, high)
        assert repr(ours) == repr(read_card_log_py(log, low, high))
        expected = [x for j in range(0, len(flat), 2) if low <= float(flat[j + 1]) < high
                    for x in (flat[j], float(flat[j + 1]))]
        assert ours[0] == expected and ours[1] == float(log.partition("\n")[0])
        kept += len(expected)
    assert kept > 10_000
    assert native.read_card_log(None, 0.0, 1.0) == read_card_log_py(None, 0.0, 1.0) == ([], None)
    assert native.read_card_log("17.5", 0.0, 1.0) == ([], 17.5)


@pytest.mark.parametrize("log", ["1\nt|1.0|US|m", "1\nt|1.0|US|m|", "x\nt|1.0|US|m|5", "1\n", "1\nt|1|U|m|5\n"])
def test_malformed_card_logs_raise_value_error_in_both(log: str) -> None:
    with pytest.raises(ValueError):
        native.read_card_log(log, 0.0, 10.0)
    with pytest.raises(ValueError):
        read_card_log_py(log, 0.0, 10.0)


def test_ties_follow_time_then_id_then_position() -> None:
    ts = 1_700_000_000.0
    t = ts - 100.0
    # equal times: ordered by id ("a" < "a0" < "ab"), then by position for the same id; the sum's rounding shows
    # the order: 1 + 3 - 1e16 + 1e16 is 4.0, while the list's own order (1e16 + 1 - 1e16 + 3) would give 3.0
    flat: list[str | float] = []
    for tid, amount in [("ab", 1e16), ("a", 1.0), ("a0", -1e16), ("a", 3.0)]:
        flat += (card_member(tid, amount, "US", "m"), t)
    result = native.aggregate_card_window(flat, ts, "US", *CONSTANTS)
    assert result[6] == ((1.0 + 3.0) + -1e16) + 1e16 == 4.0
    reversed_pairs = [x for i in range(len(flat) - 2, -1, -2) for x in flat[i:i + 2]]
    assert both(flat, ts, "US") == both(reversed_pairs, ts, "US")


def test_the_usual_country_is_the_most_frequent_then_the_first_alphabetically() -> None:
    ts = 1_700_000_000.0
    flat: list[str | float] = []
    for n, country in enumerate(["FR", "US", "US", "FR", "", "", ""]):
        flat += (card_member(f"t{n}", 10.0, country, "m"), ts - 10 * (n + 1))
    assert both(flat, ts, "DE").endswith("False, 'FR')")


@pytest.mark.parametrize("history", [
    ["only-two|fields", "1.0"],
    ["t|not-a-number|US|m", "1.0"],
    ["t|1.0|US|m", "yesterday"],
    ["t|1.0|US|m"],
    ["t|0x1p3|US|m", "1.0"],  # hex: strtod would read it, float() does not
    ["t|nan(1)|US|m", "1.0"],
    ["t|1e|US|m", "1.0"],
    ["t|1.0|US|m", "0x1p0"],
])
def test_malformed_windows_raise_value_error_in_both(history: list[str]) -> None:
    ts = 2.0
    with pytest.raises(ValueError):
        native.aggregate_card_window(history, ts, None, *CONSTANTS)
    with pytest.raises(ValueError):
        aggregate_card_window_py(history, ts, None, *CONSTANTS)


@pytest.mark.parametrize("history", [[b"t|1.0|US|m", 1.0], ["t|1.0|US|m", b"1.0"], ["t|1.0|US|m", True],
                                     ["t|1.0|US|m", None]])
def test_values_of_other_types_are_a_type_error_in_both(history: list[object]) -> None:
    with pytest.raises(TypeError):
        native.aggregate_card_window(history, 2.0, None, *CONSTANTS)
    with pytest.raises(TypeError):
        aggregate_card_window_py(history, 2.0, None, *CONSTANTS)  # type: ignore[arg-type]


def test_numbers_float_reads_and_strtod_does_not_read_alike() -> None:
    """Text outside plain decimals goes to float() itself: underscores, spaces, long digit strings, ints."""
    ts = 1_700_000_000.0
    for amount_text, time_value in [("1_000.5", "1699999000.5"), (" 12.5 ", " 1699999000.25"),
                                    ("1" * 70 + ".5", 1_699_999_000), ("inf", "1.6999990e9"),
                                    ("-0.0", "+1699999999.999999999999999999")]:
        flat = [f"t|{amount_text}|US|m", time_value]
        both(flat, ts, "US")


def _counts(rng: random.Random, day: int) -> DailyCounts:
    counts = DailyCounts()
    for d in range(day - 40, day + 2):
        if rng.random() < 0.7:
            counts.add("tx", d, rng.randint(0, 40))
        if rng.random() < 0.2:
            counts.add("fraud", d, rng.randint(0, 3))
    return counts


def test_native_feature_rows_equal_fraud_features_bit_for_bit() -> None:
    rng = random.Random(12)
    now = time.time()
    merchants = [_counts(rng, int(now // DAY)) for _ in range(5)] + [DailyCounts()]
    times: list[float] = []
    amounts: list[float] = []
    countries: list[str | None] = []
    states: list[FraudState] = []
    for _ in range(3000):
        ts = rng.choice([now - rng.uniform(0, 30 * DAY), -rng.uniform(0, 30 * DAY),  # before 1970 too: % and //
                         float(int(now // DAY) * DAY), rng.randint(0, 10**6) * HOUR + 0.5, 0.0, now])
        times.append(ts)
        amounts.append(rng.choice([0.0, 4.99, 5.0, round(rng.uniform(0, 900), 2), rng.uniform(0, 1e6), 1e-9]))
        countries.append(rng.choice([None, "", "US", "FR", "JP", "ÜÜ", "DE", "XX"]))
        states.append(FraudState(_random_window(rng, ts), rng.choice(merchants), rng.choice(merchants)))
    assert native.fraud_feature_rows is not None
    rows = features.fraud_feature_rows(times, amounts, countries, states)
    definition = [fraud_features(*row) for row in zip(times, amounts, countries, states, strict=True)]
    assert repr(rows) == repr(definition)
    assert len({row[18] for row in rows}) > 3 and len({row[21] for row in rows}) > 3  # distances and risks vary


def test_feature_rows_in_python_when_the_extension_is_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(13)
    now = time.time()
    states = [FraudState(_random_window(rng, now), _counts(rng, int(now // DAY))) for _ in range(50)]
    with_c = features.fraud_feature_rows([now] * 50, [12.5] * 50, ["FR"] * 50, states)
    monkeypatch.setattr(features, "_native_rows", None)
    assert features.fraud_feature_rows([now] * 50, [12.5] * 50, ["FR"] * 50, states) == with_c
