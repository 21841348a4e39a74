"""Loading a user's own labelled history (CSV or Parquet) in the documented schemas (``training/README.md``).

Every value is checked; the first bad one raises :class:`DataError` naming the file, the column and the 1-based
data row (row 1 is the first line after a CSV header). Loaded frames have exactly the simulators' shapes, so
everything downstream treats user data and simulated data alike.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from schemas.events import UNKNOWN_MCC

TRANSACTION_COLUMNS = ("transaction_id", "timestamp", "card_id", "merchant_id", "transaction_amount", "is_fraud")
TRANSACTION_OPTIONAL = ("mcc_code", "country_code", "label_timestamp", "scenario")
SESSION_COLUMNS = ("event_id", "timestamp", "user_id", "session_id", "item_id", "item_category", "item_price",
                   "event_type")
EVENT_TYPES = ("view", "cart", "purchase")
DEFAULT_LABEL_DELAY_DAYS = 7.0
"""Arrival delay assumed for fraud labels when a file has no ``label_timestamp`` (the features' label delay)."""

_ID = re.compile(r"^[^|\s]{1,128}$")
_MCC = re.compile(r"^[0-9]{4}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_TRUE = frozenset({"1", "true", "t", "yes", "y", "1.0"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "0.0"})


class DataError(ValueError):
    """A user file that does not follow the documented schema."""


@dataclass(frozen=True, slots=True)
class TransactionData:
    transactions: pd.DataFrame
    """``transaction_id, timestamp, card_id, merchant_id, mcc_code, country_code, transaction_amount, is_fraud,
    scenario`` (``scenario`` is ``None`` unless the file has it), sorted by time."""
    labels: pd.DataFrame
    """One row per fraud: ``transaction_id, card_id, merchant_id, mcc_code, transaction_timestamp, timestamp
    (label arrival), is_fraud``."""
    source: str


@dataclass(frozen=True, slots=True)
class SessionData:
    events: pd.DataFrame
    """``event_id, timestamp, user_id, session_id, item_id, item_category, item_price, event_type``."""
    source: str


def load_transactions(path: str | Path, label_delay_days: float = DEFAULT_LABEL_DELAY_DAYS) -> TransactionData:
    """Read and validate a labelled transactions file.

    Fraud labels arrive at ``label_timestamp`` when the file has that column (a value for every fraud row), else
    ``label_delay_days`` after the transaction.
    """
    raw = _read(path)
    check = _Checker(str(path), raw)
    check.require(TRANSACTION_COLUMNS)
    frame = pd.DataFrame({
        "transaction_id": check.ids("transaction_id", unique=True),
        "timestamp": check.timestamps("timestamp"),
        "card_id": check.ids("card_id"),
        "merchant_id": check.ids("merchant_id"),
        "mcc_code": check.pattern("mcc_code", _MCC, "a 4-digit MCC", default=UNKNOWN_MCC, normalize=_pad_mcc),
        "country_code": check.pattern("country_code", _COUNTRY, "an ISO 3166 alpha-2 code (e.g. US)",
                                      default=None, normalize=str.upper),
        "transaction_amount": check.numbers("transaction_amount", 0.0, 1_000_000.0),
        "is_fraud": check.booleans("is_fraud"),
        "scenario": check.optional_text("scenario"),
    })
    arrival = frame["timestamp"] + pd.Timedelta(days=label_delay_days)
    if "label_timestamp" in raw.columns:
        given = check.timestamps("label_timestamp", required=False)
        bad = frame["is_fraud"] & given.isna()
        check.fail_at("label_timestamp", bad, "a fraud row needs its label arrival time")
        check.fail_at("label_timestamp", given.notna() & (given < frame["timestamp"]),
                      "the label cannot arrive before its transaction")
        arrival = given.where(given.notna(), arrival)
    frame = frame.assign(_arrival=arrival).sort_values(["timestamp", "transaction_id"], kind="stable")
    frame = frame.reset_index(drop=True)
    frauds = frame.loc[frame["is_fraud"]]
    labels = pd.DataFrame({
        "transaction_id": frauds["transaction_id"], "card_id": frauds["card_id"],
        "merchant_id": frauds["merchant_id"], "mcc_code": frauds["mcc_code"],
        "transaction_timestamp": frauds["timestamp"], "timestamp": frauds["_arrival"], "is_fraud": True,
    }).sort_values(["timestamp", "transaction_id"], kind="stable").reset_index(drop=True)
    return TransactionData(frame.drop(columns="_arrival"), labels, f"file:{Path(path).resolve()}")


def load_sessions(path: str | Path) -> SessionData:
    """Read and validate a session-events file (the label, conversion, is derived from its purchases)."""
    raw = _read(path)
    check = _Checker(str(path), raw)
    check.require(SESSION_COLUMNS)
    frame = pd.DataFrame({
        "event_id": check.ids("event_id", unique=True),
        "timestamp": check.timestamps("timestamp"),
        "user_id": check.ids("user_id"),
        "session_id": check.ids("session_id"),
        "item_id": check.ids("item_id"),
        "item_category": check.pattern("item_category", re.compile(r"^[^|\s]{1,64}$"),
                                       "a category without spaces or '|'", default="unknown"),
        "item_price": check.numbers("item_price", 0.0, 1_000_000.0),
        "event_type": check.choice("event_type", EVENT_TYPES),
    })
    frame = frame.sort_values(["timestamp", "event_id"], kind="stable").reset_index(drop=True)
    return SessionData(frame, f"file:{Path(path).resolve()}")


# ------------------------------------------------------------------------------------------------------ reading
def _read(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(p)
        elif suffix in (".csv", ".txt") or p.name.lower().endswith(".csv.gz"):
            frame = pd.read_csv(p, dtype=str, keep_default_na=False, skipinitialspace=True)
        else:
            raise DataError(f"{p}: unsupported file type {suffix!r} (use .csv or .parquet)")
    except DataError:
        raise
    except Exception as exc:  # a malformed file: say which one and why
        raise DataError(f"{p}: cannot be read: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise DataError(f"{p}: no data rows")
    return frame.reset_index(drop=True)


def _pad_mcc(value: str) -> str:
    return value.zfill(4) if value.isdigit() and len(value) < 4 else value


class _Checker:
    """Column-by-column validation that reports the first bad row of a column."""

    def __init__(self, path: str, frame: pd.DataFrame) -> None:
        self.path = path
        self.frame = frame

    def require(self, columns: tuple[str, ...]) -> None:
        missing = [c for c in columns if c not in self.frame.columns]
        if missing:
            raise DataError(f"{self.path}: missing required column {missing[0]!r} (columns found: "
                            f"{', '.join(map(str, self.frame.columns))})")

    def fail_at(self, column: str, bad: pd.Series | np.ndarray, problem: str) -> None:
        rows = np.flatnonzero(np.asarray(bad))
        if len(rows):
            i = int(rows[0])
            value = self.frame[column].iloc[i] if column in self.frame.columns else None
            raise DataError(f"{self.path}: column {column!r}, row {i + 1}: {problem} (got {value!r})")

    def _text(self, column: str) -> pd.Series:
        col = self.frame[column]
        return col.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip())

    def ids(self, column: str, unique: bool = False) -> pd.Series:
        text = self._text(column)
        self.fail_at(column, ~text.str.match(_ID), "expected a non-empty id of at most 128 characters without "
                                                    "spaces or '|'")
        if unique:
            self.fail_at(column, text.duplicated(), "duplicate id")
        return text.astype(object)

    def timestamps(self, column: str, required: bool = True) -> pd.Series:
        col = self.frame[column]
        if pd.api.types.is_datetime64_any_dtype(col):
            parsed = pd.to_datetime(col, utc=True)
            blank = parsed.isna()
        else:
            text = self._text(column)
            blank = text == ""
            numeric = pd.to_numeric(text.where(~blank), errors="coerce")
            as_epoch = pd.to_datetime(numeric, unit="s", utc=True, errors="coerce")
            as_text = pd.to_datetime(text.where(numeric.isna() & ~blank), utc=True, errors="coerce",
                                     format="ISO8601")
            parsed = as_epoch.where(numeric.notna(), as_text)
        if required:
            self.fail_at(column, blank, "missing timestamp")
        self.fail_at(column, parsed.isna() & ~blank, "expected an ISO 8601 timestamp or epoch seconds")
        return parsed.astype("datetime64[us, UTC]")

    def numbers(self, column: str, low: float, high: float) -> pd.Series:
        values = pd.to_numeric(self._text(column), errors="coerce").astype(float)
        self.fail_at(column, ~np.isfinite(values), "expected a number")
        self.fail_at(column, (values < low) | (values > high), f"expected a number between {low:g} and {high:g}")
        return values

    def booleans(self, column: str) -> pd.Series:
        text = self._text(column).str.lower()
        self.fail_at(column, ~text.isin(_TRUE | _FALSE), "expected 0/1 or true/false")
        return text.isin(_TRUE)

    def choice(self, column: str, allowed: tuple[str, ...]) -> pd.Series:
        text = self._text(column).str.lower()
        self.fail_at(column, ~text.isin(allowed), f"expected one of {', '.join(allowed)}")
        return text.astype(object)

    def pattern(self, column: str, regex: re.Pattern[str], what: str, default: str | None,
                normalize: Callable[[str], str] | None = None) -> pd.Series:
        if column not in self.frame.columns:
            return pd.Series([default] * len(self.frame), dtype=object)
        text = self._text(column)
        if normalize is not None:
            text = text.map(normalize)
        blank = text == ""
        self.fail_at(column, ~blank & ~text.str.match(regex), f"expected {what}")
        return pd.Series([v if v else default for v in text.tolist()], dtype=object)

    def optional_text(self, column: str) -> pd.Series:
        if column not in self.frame.columns:
            return pd.Series([None] * len(self.frame), dtype=object)
        return pd.Series([v if v else None for v in self._text(column).tolist()], dtype=object)
