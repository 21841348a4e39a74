from collections.abc import Sequence

from stream_scorer.core.window import CardAggregates, CardWindow

def aggregate_card_window(history: CardWindow, ts: float, country: str | None, window_sec: float, day_sec: float,
                          hour_sec: float, small_amount: float, /) -> CardAggregates: ...

def fraud_feature_rows(histories: Sequence[CardWindow], times: Sequence[float], amounts: Sequence[float],
                       countries: Sequence[str | None], risks: Sequence[tuple[float, float, float]],
                       distances: dict[tuple[str, str], float], window_sec: float, day_sec: float, hour_sec: float,
                       small_amount: float, /) -> list[list[float]]: ...

def read_card_log(log: str | None, low: float, high: float, /) -> tuple[list[str | float], float | None]: ...
