"""The history a model was trained on, saved under ``data/`` so materialization replays exactly that history.

Layout: ``<data_dir>/fraud/{transactions,labels}.parquet`` and ``<data_dir>/personalization/sessions.parquet``,
each folder with a ``manifest.json`` (source, simulator parameters, time range, row counts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

DEFAULT_DATA_DIR = Path("data")


@dataclass(frozen=True, slots=True)
class FraudHistory:
    transactions: pd.DataFrame
    labels: pd.DataFrame
    manifest: dict[str, Any]

    @property
    def end(self) -> datetime:
        return datetime.fromisoformat(self.manifest["history_end"])


@dataclass(frozen=True, slots=True)
class SessionHistory:
    events: pd.DataFrame
    manifest: dict[str, Any]

    @property
    def end(self) -> datetime:
        return datetime.fromisoformat(self.manifest["history_end"])


def save_fraud_history(data_dir: Path, transactions: pd.DataFrame, labels: pd.DataFrame, source: str,
                       end: datetime, params: dict[str, Any] | None = None) -> Path:
    folder = data_dir / "fraud"
    folder.mkdir(parents=True, exist_ok=True)
    transactions.to_parquet(folder / "transactions.parquet", index=False)
    labels.to_parquet(folder / "labels.parquet", index=False)
    _write_manifest(folder, source, end, params, transactions=len(transactions), labels=len(labels),
                    history_start=transactions["timestamp"].min().isoformat())
    return folder


def save_session_history(data_dir: Path, events: pd.DataFrame, source: str, end: datetime,
                         params: dict[str, Any] | None = None) -> Path:
    folder = data_dir / "personalization"
    folder.mkdir(parents=True, exist_ok=True)
    events.to_parquet(folder / "sessions.parquet", index=False)
    _write_manifest(folder, source, end, params, events=len(events),
                    history_start=events["timestamp"].min().isoformat())
    return folder


def load_fraud_history(data_dir: Path) -> FraudHistory | None:
    folder = data_dir / "fraud"
    if not (folder / "manifest.json").is_file():
        return None
    return FraudHistory(pd.read_parquet(folder / "transactions.parquet"), pd.read_parquet(folder / "labels.parquet"),
                        json.loads((folder / "manifest.json").read_text()))


def load_session_history(data_dir: Path) -> SessionHistory | None:
    folder = data_dir / "personalization"
    if not (folder / "manifest.json").is_file():
        return None
    return SessionHistory(pd.read_parquet(folder / "sessions.parquet"),
                          json.loads((folder / "manifest.json").read_text()))


def _write_manifest(folder: Path, source: str, end: datetime, params: dict[str, Any] | None,
                    **extra: Any) -> None:
    manifest = {"source": source, "history_end": end.isoformat(), "params": params or {}, **extra}
    tmp = folder / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    tmp.replace(folder / "manifest.json")
