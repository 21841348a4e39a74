"""From options to a feature frame with a split: simulate or load, save the history, replay features."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from stream_scorer.core.features import (
    FRAUD_DEFAULTS,
    FRAUD_FEATURE_NAMES,
    PERSONALIZATION_DEFAULTS,
    PERSONALIZATION_FEATURE_NAMES,
)
from training.console import Steps
from training.data import DEFAULT_LABEL_DELAY_DAYS, load_sessions, load_transactions
from training.history import DEFAULT_DATA_DIR, save_fraud_history, save_session_history
from training.offline_features import fraud_feature_frame, personalization_feature_frame
from training.simulate.sessions import SessionSimConfig, simulate_sessions
from training.simulate.transactions import TransactionSimConfig, simulate_transactions
from training.split import ModelKind, TimeSplit, derive_split
from training.trainers import DEFAULT_FRAMEWORK, PosWeightPolicy


@dataclass(slots=True)
class TrainOptions:
    kind: ModelKind
    data: Path | None = None
    """A user file (CSV/Parquet); None simulates the default history."""
    framework: str = DEFAULT_FRAMEWORK
    train_start: datetime | None = None
    train_days: int | None = None
    delay_days: int | None = None
    test_days: int | None = None
    validation_days: int | None = None
    seed: int = 7
    model_dir: Path = Path("artifacts")
    data_dir: Path | None = DEFAULT_DATA_DIR
    """Where the history is saved for materialization (None: not saved)."""
    label_delay_days: float = DEFAULT_LABEL_DELAY_DAYS
    review_fpr: float = 0.02
    decline_fpr: float = 0.002
    pos_weight: PosWeightPolicy | None = None
    """None: ``DEFAULT_POS_WEIGHT[kind]``."""
    baseline: bool = True
    sim_entities: int | None = None
    """Cards (fraud) or users (personalization) to simulate; None: the simulator's default."""
    sim_days: int | None = None
    sim_end: datetime | None = None


@dataclass(slots=True)
class Prepared:
    kind: ModelKind
    frame: pd.DataFrame
    """Feature frame: ids, ``timestamp``, ``label`` (eventual truth), ``train_label`` and the features."""
    feature_names: tuple[str, ...]
    defaults: dict[str, float]
    split: TimeSplit
    data_source: str
    history: dict[str, object] = field(default_factory=dict)

    def mask(self, period: str) -> np.ndarray:
        ts = self.frame["timestamp"]
        s = self.split
        bounds = {"fit": (s.train_start, s.validation_start), "validation": (s.validation_start, s.train_end),
                  "test": (s.test_start, s.test_end)}[period]
        return ((ts >= bounds[0]) & (ts < bounds[1])).to_numpy()


def prepare(opts: TrainOptions, steps: Steps) -> Prepared:
    return prepare_fraud(opts, steps) if opts.kind == "fraud" else prepare_personalization(opts, steps)


def prepare_fraud(opts: TrainOptions, steps: Steps) -> Prepared:
    with steps.step("load data" if opts.data else "simulate transactions"):
        if opts.data is not None:
            loaded = load_transactions(opts.data, opts.label_delay_days)
            tx, labels, source = loaded.transactions, loaded.labels, loaded.source
            end = _end_of(tx)
            params: dict[str, object] = {"label_delay_days": opts.label_delay_days}
        else:
            cfg = TransactionSimConfig(seed=opts.seed, end=opts.sim_end,
                                       **_sizes(opts, "n_cards"))
            sim = simulate_transactions(cfg)
            tx, labels, end, source = sim.transactions, sim.labels, sim.end, "simulated"
            params = cfg.as_dict()
        if opts.data_dir is not None:
            save_fraud_history(opts.data_dir, tx, labels, source, end, params)
    with steps.progress("fraud features (replay)", len(tx)) as advance:
        frame = fraud_feature_frame(tx, labels, progress=advance)
    split = _split(opts, frame, end)
    # A training label counts only if the chargeback had arrived by training time (the start of the test).
    arrived = labels.loc[labels["timestamp"] < split.label_cutoff, "transaction_id"]
    frame["train_label"] = (frame["label"].astype(bool) & frame["transaction_id"].isin(arrived)).astype(np.int8)
    return Prepared("fraud", frame, FRAUD_FEATURE_NAMES, dict(FRAUD_DEFAULTS), split, source,
                    {"transactions": len(tx), "labels": len(labels), "history_end": end.isoformat(),
                     "simulation": params if source == "simulated" else None})


def prepare_personalization(opts: TrainOptions, steps: Steps) -> Prepared:
    with steps.step("load data" if opts.data else "simulate sessions"):
        if opts.data is not None:
            loaded = load_sessions(opts.data)
            events, source = loaded.events, loaded.source
            end = _end_of(events)
            params: dict[str, object] = {}
        else:
            cfg = SessionSimConfig(seed=opts.seed, end=opts.sim_end, **_sizes(opts, "n_users"))
            sim = simulate_sessions(cfg)
            events, end, source = sim.events, sim.end, "simulated"
            params = cfg.as_dict()
        if opts.data_dir is not None:
            save_session_history(opts.data_dir, events, source, end, params)
    with steps.progress("personalization features (replay)", len(events)) as advance:
        frame = personalization_feature_frame(events, progress=advance)
    frame["train_label"] = frame["label"].astype(np.int8)
    split = _split(opts, frame, end, history_start=events["timestamp"].min())
    return Prepared("personalization", frame, PERSONALIZATION_FEATURE_NAMES, dict(PERSONALIZATION_DEFAULTS), split,
                    source, {"events": len(events), "history_end": end.isoformat(),
                             "simulation": params if source == "simulated" else None})


def _sizes(opts: TrainOptions, entity_field: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    if opts.sim_entities is not None:
        sizes[entity_field] = opts.sim_entities
    if opts.sim_days is not None:
        sizes["days"] = opts.sim_days
    return sizes


def _end_of(frame: pd.DataFrame) -> datetime:
    last: datetime = frame["timestamp"].max().to_pydatetime()
    return last + timedelta(seconds=1)


def _split(opts: TrainOptions, frame: pd.DataFrame, end: datetime,
           history_start: pd.Timestamp | None = None) -> TimeSplit:
    start = (history_start if history_start is not None else frame["timestamp"].min()).to_pydatetime()
    # A simulated history starts at a round time; the first event comes a little later.
    if opts.data is None:
        days = opts.sim_days or (TransactionSimConfig().days if opts.kind == "fraud" else SessionSimConfig().days)
        start = min(start, end - timedelta(days=days))
    return derive_split(opts.kind, start, end, train_start=opts.train_start, train_days=opts.train_days,
                        delay_days=opts.delay_days, test_days=opts.test_days,
                        validation_days=opts.validation_days)
