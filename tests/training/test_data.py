from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from training.data import DataError, load_sessions, load_transactions

GOOD_TX = """transaction_id,timestamp,card_id,merchant_id,transaction_amount,is_fraud,mcc_code,country_code
t1,2024-01-01T10:00:00Z,card_1,m_1,12.50,0,5411,US
t2,2024-01-01T11:00:00+01:00,card_1,m_2,900,1,5732,ng
t3,1704110400,card_2,m_1,3.2,false,411,
t4,2024-01-02 09:30:00,card_2,m_3,40,TRUE,,FR
"""


def _write(tmp_path: Path, text: str, name: str = "tx.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_loads_a_good_transactions_csv(tmp_path: Path) -> None:
    data = load_transactions(_write(tmp_path, GOOD_TX), label_delay_days=7)
    tx = data.transactions
    assert list(tx["transaction_id"]) == ["t1", "t2", "t3", "t4"]  # by time, then id (t2 is 10:00 UTC too)
    assert str(tx["timestamp"].dt.tz) == "UTC"
    assert tx["timestamp"].iloc[1] == pd.Timestamp("2024-01-01T10:00:00Z")
    assert tx["timestamp"].iloc[2] == pd.Timestamp("2024-01-01T12:00:00Z")  # epoch seconds
    assert tx.loc[tx["transaction_id"] == "t3", "mcc_code"].item() == "0411"  # zero-padded
    assert tx.loc[tx["transaction_id"] == "t4", "mcc_code"].item() == "0000"  # default: unknown
    assert tx.loc[tx["transaction_id"] == "t2", "country_code"].item() == "NG"
    assert tx.loc[tx["transaction_id"] == "t3", "country_code"].item() is None
    assert tx["is_fraud"].tolist() == [False, True, False, True]
    labels = data.labels
    assert set(labels["transaction_id"]) == {"t2", "t4"}
    delays = (labels["timestamp"] - labels["transaction_timestamp"]).dt.total_seconds() / 86_400
    assert (delays == 7).all()


def test_optional_columns_may_be_absent_and_label_times_used_when_given(tmp_path: Path) -> None:
    text = ("transaction_id,timestamp,card_id,merchant_id,transaction_amount,is_fraud,label_timestamp\n"
            "a,2024-01-01T00:00:00Z,c,m,1,1,2024-01-03T00:00:00Z\n"
            "b,2024-01-02T00:00:00Z,c,m,2,0,\n")
    data = load_transactions(_write(tmp_path, text))
    assert data.transactions["mcc_code"].tolist() == ["0000", "0000"]
    assert data.transactions["country_code"].isna().all()
    assert data.labels["timestamp"].tolist() == [pd.Timestamp("2024-01-03", tz="UTC")]


def test_parquet_is_accepted(tmp_path: Path) -> None:
    frame = pd.read_csv(_write(tmp_path, GOOD_TX), dtype=str, keep_default_na=False)
    frame["transaction_amount"] = frame["transaction_amount"].astype(float)
    frame["timestamp"] = pd.to_datetime(["2024-01-01T10:00Z", "2024-01-01T10:00Z", "2024-01-01T12:00Z",
                                         "2024-01-02T09:30Z"], utc=True)
    path = tmp_path / "tx.parquet"
    frame.to_parquet(path)
    assert len(load_transactions(path).transactions) == 4


@pytest.mark.parametrize(("line", "column", "problem"), [
    ("t9,2024-01-03T00:00:00Z,card_1,m_1,abc,0,5411,US", "transaction_amount", "expected a number"),
    ("t9,2024-01-03T00:00:00Z,card_1,m_1,-5,0,5411,US", "transaction_amount", "between"),
    ("t9,not-a-date,card_1,m_1,5,0,5411,US", "timestamp", "ISO 8601"),
    ("t9,2024-01-03T00:00:00Z,card 1,m_1,5,0,5411,US", "card_id", "without spaces"),
    ("t9,2024-01-03T00:00:00Z,card_1,m_1,5,maybe,5411,US", "is_fraud", "0/1"),
    ("t9,2024-01-03T00:00:00Z,card_1,m_1,5,0,54110,US", "mcc_code", "4-digit"),
    ("t9,2024-01-03T00:00:00Z,card_1,m_1,5,0,5411,USA", "country_code", "alpha-2"),
    ("t1,2024-01-03T00:00:00Z,card_1,m_1,5,0,5411,US", "transaction_id", "duplicate"),
    ("t9,,card_1,m_1,5,0,5411,US", "timestamp", "missing"),
])
def test_bad_value_names_column_and_row(tmp_path: Path, line: str, column: str, problem: str) -> None:
    path = _write(tmp_path, GOOD_TX + line + "\n")
    with pytest.raises(DataError) as info:
        load_transactions(path)
    message = str(info.value)
    assert f"column '{column}', row 5" in message  # the fifth data row
    assert problem in message


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "transaction_id,timestamp,card_id,transaction_amount,is_fraud\nt,2024-01-01,c,1,0\n")
    with pytest.raises(DataError, match="missing required column 'merchant_id'"):
        load_transactions(path)


def test_empty_unreadable_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no data rows"):
        load_transactions(_write(tmp_path, GOOD_TX.splitlines()[0] + "\n"))
    with pytest.raises(DataError, match="no such file"):
        load_transactions(tmp_path / "absent.csv")
    with pytest.raises(DataError, match="unsupported file type"):
        load_transactions(_write(tmp_path, "x", "tx.json"))
    with pytest.raises(DataError, match="cannot be read"):
        load_transactions(_write(tmp_path, "not parquet", "tx.parquet"))


def test_fraud_row_without_label_time_is_rejected_when_the_column_exists(tmp_path: Path) -> None:
    text = ("transaction_id,timestamp,card_id,merchant_id,transaction_amount,is_fraud,label_timestamp\n"
            "a,2024-01-02T00:00:00Z,c,m,1,0,\n"
            "b,2024-01-02T00:00:00Z,c,m,1,1,2024-01-01T00:00:00Z\n")
    with pytest.raises(DataError, match="column 'label_timestamp', row 2: the label cannot arrive before"):
        load_transactions(_write(tmp_path, text))


GOOD_SESSIONS = """event_id,timestamp,user_id,session_id,item_id,item_category,item_price,event_type
e1,2024-01-01T10:00:00Z,u1,s1,item_books_001,books,12.5,view
e2,2024-01-01T10:01:00Z,u1,s1,item_books_001,books,12.5,cart
e3,2024-01-01T10:02:00Z,u1,s1,item_books_001,books,12.5,PURCHASE
"""


def test_loads_sessions_and_rejects_bad_rows(tmp_path: Path) -> None:
    data = load_sessions(_write(tmp_path, GOOD_SESSIONS, "s.csv"))
    assert data.events["event_type"].tolist() == ["view", "cart", "purchase"]
    bad = GOOD_SESSIONS + "e4,2024-01-01T10:03:00Z,u1,s1,item_books_002,books,9,like\n"
    with pytest.raises(DataError, match="column 'event_type', row 4: expected one of view, cart, purchase"):
        load_sessions(_write(tmp_path, bad, "bad.csv"))
    bad_price = GOOD_SESSIONS + "e4,2024-01-01T10:03:00Z,u1,s1,item_books_002,books,free,view\n"
    with pytest.raises(DataError, match="column 'item_price', row 4"):
        load_sessions(_write(tmp_path, bad_price, "bad2.csv"))
