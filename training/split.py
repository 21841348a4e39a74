"""Time-based split: warm-up | train (fit + validation) | delay | test.

* **warm-up**: history before ``train_start``, replayed only so features have their windows filled (the merchant
  risk window reaches back ``LABEL_DELAY_DAYS + RISK_WINDOW_DAYS`` = 35 days);
* **train**: ``train_days`` from ``train_start``; its last ``validation_days`` are the validation period (early
  stopping, decision thresholds);
* **delay**: ``delay_days`` left out between train and test: at training time (the start of the test period) the
  labels of the latest transactions are not known yet, so a training label counts only if it arrived by then;
* **test**: ``test_days`` right after the delay, scored with the eventual (true) labels.

Without ``--train-start`` the periods are laid back from the end of the history (the test period ends there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

ModelKind = Literal["fraud", "personalization"]


@dataclass(frozen=True, slots=True)
class SplitDefaults:
    warmup_days: int
    train_days: int
    delay_days: int
    test_days: int


DEFAULTS: dict[ModelKind, SplitDefaults] = {
    "fraud": SplitDefaults(warmup_days=35, train_days=21, delay_days=7, test_days=7),
    "personalization": SplitDefaults(warmup_days=14, train_days=14, delay_days=0, test_days=7),
}


MIN_WARMUP_FRACTION = 0.6
"""A short history first gives up warm-up, down to this share of the default (fraud 21 days: the card window and
two weeks of arrived labels), before the train / delay / test periods shrink."""


class SplitError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class TimeSplit:
    history_start: datetime
    train_start: datetime
    validation_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime
    notes: tuple[str, ...] = ()

    @property
    def label_cutoff(self) -> datetime:
        """Training time: a training label counts only if it had arrived by then."""
        return self.test_start

    def as_dict(self) -> dict[str, str | float]:
        day = 86_400.0
        return {
            "history_start": self.history_start.isoformat(),
            "train_start": self.train_start.isoformat(),
            "validation_start": self.validation_start.isoformat(),
            "train_end": self.train_end.isoformat(),
            "test_start": self.test_start.isoformat(),
            "test_end": self.test_end.isoformat(),
            "label_cutoff": self.label_cutoff.isoformat(),
            "warmup_days": (self.train_start - self.history_start).total_seconds() / day,
            "train_days": (self.train_end - self.train_start).total_seconds() / day,
            "validation_days": (self.train_end - self.validation_start).total_seconds() / day,
            "delay_days": (self.test_start - self.train_end).total_seconds() / day,
            "test_days": (self.test_end - self.test_start).total_seconds() / day,
        }


def parse_date(value: str) -> datetime:
    """``YYYY-MM-DD`` (UTC midnight) or a full ISO 8601 timestamp (naive means UTC)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise SplitError(f"--train-start: expected a date like 2024-07-25, got {value!r}") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def derive_split(kind: ModelKind, history_start: datetime, history_end: datetime, *,
                 train_start: datetime | None = None, train_days: int | None = None,
                 delay_days: int | None = None, test_days: int | None = None,
                 validation_days: int | None = None) -> TimeSplit:
    """The split for a history ``[history_start, history_end)``; unset lengths come from ``DEFAULTS[kind]``.

    When the history is too short for the default lengths (a small user file), the warm-up shrinks first, then
    all periods in proportion (train keeps at least two days, test one) and a note says so.
    """
    d = DEFAULTS[kind]
    notes: list[str] = []
    span = (history_end - history_start).total_seconds() / 86_400.0
    train = train_days if train_days is not None else d.train_days
    delay = delay_days if delay_days is not None else d.delay_days
    test = test_days if test_days is not None else d.test_days
    if train < 2 or test < 1 or delay < 0:
        raise SplitError("need --train-days >= 2, --test-days >= 1 and --delay-days >= 0")
    if train_start is None:
        warmup = d.warmup_days
        needed = warmup + train + delay + test
        if span < needed and all(v is None for v in (train_days, delay_days, test_days)):
            # Shorten the warm-up first (to MIN_WARMUP_FRACTION of it), then every period in proportion.
            warmup = max(math.ceil(d.warmup_days * MIN_WARMUP_FRACTION), math.floor(span) - train - delay - test)
            if warmup + train + delay + test > span:
                scale = span / (warmup + train + delay + test)
                train, test = max(2, math.floor(train * scale + 1e-9)), max(1, math.floor(test * scale + 1e-9))
                delay = math.floor(delay * scale + 1e-9)
            notes.append(f"history spans {span:.1f} days, less than the default {needed}: periods set to "
                         f"train {train} / delay {delay} / test {test} days")
        test_end = history_end
        train_start = test_end - timedelta(days=train + delay + test)
    else:
        test_end = train_start + timedelta(days=train + delay + test)
    if train_start < history_start:
        raise SplitError(f"the train period would start at {train_start.isoformat()}, before the history "
                         f"({history_start.isoformat()}): use a later --train-start or fewer days")
    if test_end > history_end + timedelta(seconds=1):
        raise SplitError(f"the test period would end at {test_end.isoformat()}, after the history "
                         f"({history_end.isoformat()}): use an earlier --train-start or fewer days")
    warmup_left = (train_start - history_start).total_seconds() / 86_400.0
    if warmup_left < d.warmup_days:
        notes.append(f"only {warmup_left:.1f} days of feature warm-up before training (recommended "
                     f"{d.warmup_days}): early training rows see partly empty windows")
    val = validation_days if validation_days is not None else max(1, round(train / 3))
    if not 1 <= val < train:
        raise SplitError(f"--validation-days must be between 1 and {train - 1}")
    train_end = train_start + timedelta(days=train)
    return TimeSplit(
        history_start=history_start, train_start=train_start, validation_start=train_end - timedelta(days=val),
        train_end=train_end, test_start=train_end + timedelta(days=delay), test_end=test_end, notes=tuple(notes),
    )
