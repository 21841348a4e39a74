from stream_scorer.core.window import CardAggregates, CardWindow

def aggregate_card_window(history: CardWindow, ts: float, country: str | None, window_sec: float, day_sec: float,
                          hour_sec: float, small_amount: float, /) -> CardAggregates: ...
