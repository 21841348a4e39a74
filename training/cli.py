"""The ``train``, ``materialize`` and ``simulate`` subcommands, added to the project's one CLI by ``register``.

Each subcommand sets ``func`` (``func(args) -> int`` exit code) on its parser; the caller runs
``args.func(args)``.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from training.history import DEFAULT_DATA_DIR
from training.mlflow_log import mlflow_requested
from training.split import parse_date
from training.trainers import DEFAULT_FRAMEWORK, FRAMEWORKS, POS_WEIGHT_POLICIES


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _add_train(subparsers)
    _add_materialize(subparsers)
    _add_simulate(subparsers)


def _add_train(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("train", help="train a model and write a versioned artifact",
                              description="Train the fraud or personalization model on simulated history (the "
                                          "default) or on your own labelled file (schemas: training/README.md).")
    p.add_argument("model", choices=("fraud", "personalization"))
    p.add_argument("--data", type=Path, help="your labelled CSV or Parquet file (default: simulate)")
    p.add_argument("--framework", choices=FRAMEWORKS, default=DEFAULT_FRAMEWORK)
    p.add_argument("--train-start", type=parse_date, metavar="DATE",
                   help="first day of the train period (default: laid back from the end of the history)")
    p.add_argument("--train-days", type=int, metavar="N", help="train period incl. validation (fraud 21, "
                                                                "personalization 14)")
    p.add_argument("--validation-days", type=int, metavar="N", help="end of the train period used for early "
                                                                     "stopping and thresholds (default: a third)")
    p.add_argument("--delay-days", type=int, metavar="N", help="gap between train and test (fraud 7, "
                                                               "personalization 0)")
    p.add_argument("--test-days", type=int, metavar="N", help="test period (default 7)")
    p.add_argument("--seed", type=int, default=7, help="simulation and model seed (default 7)")
    p.add_argument("--model-dir", type=Path, help="artifact root (default: MODEL_DIR, else artifacts)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="where the history is saved for materialize (default data)")
    p.add_argument("--label-delay-days", type=float, default=7.0,
                   help="fraud-label arrival delay assumed when --data has no label_timestamp (default 7)")
    p.add_argument("--review-fpr", type=float, default=0.02, help="validation FPR of the review threshold")
    p.add_argument("--decline-fpr", type=float, default=0.002, help="validation FPR of the decline threshold")
    p.add_argument("--pos-weight", choices=POS_WEIGHT_POLICIES,
                   help="positive-class weight: sqrt(neg/pos), balanced (neg/pos) or none (default: sqrt for "
                        "fraud, none for personalization)")
    p.add_argument("--entities", type=int, metavar="N", help="simulated cards / users (default 5000 / 3000)")
    p.add_argument("--days", type=int, metavar="N", help="simulated days (default 70 / 35)")
    p.add_argument("--end", type=_timestamp, metavar="TIME",
                   help="end of the simulated history (default: start of the current UTC hour)")
    p.add_argument("--mlflow", action=argparse.BooleanOptionalAction, default=None,
                   help="log the run and register the model version in MLflow (default: when MLFLOW_TRACKING_URI "
                        "is set; needs the mlflow extra)")
    p.add_argument("--mlflow-alias", metavar="ALIAS",
                   help="point this registered-model alias (e.g. champion, challenger) at the new version")
    p.set_defaults(func=run_train)


def _add_materialize(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("materialize", help="load the online features computed from history into Redis",
                              description="Replay the tail of the saved training history through the Redis "
                                          "feature store's update rules (idempotent).")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--batch-size", type=int, default=5_000)
    p.add_argument("--only", choices=("fraud", "personalization"), help="materialize one model's features")
    p.add_argument("--reset", action="store_true",
                   help="delete existing feature keys (features:*, labels:seen:*) first")
    p.add_argument("--reset-if-changed", action="store_true",
                   help="reset only when Redis holds features of another history (e.g. after retraining)")
    p.set_defaults(func=run_materialize)


def _add_simulate(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("simulate", help="write a simulated history as CSV or Parquet files")
    p.add_argument("model", choices=("fraud", "personalization"))
    p.add_argument("--out", type=Path, required=True, help="output file (.csv or .parquet)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--entities", type=int, metavar="N")
    p.add_argument("--days", type=int, metavar="N")
    p.add_argument("--end", type=_timestamp, metavar="TIME")
    p.set_defaults(func=run_simulate)


def _timestamp(value: str) -> datetime:
    return parse_date(value)


# ------------------------------------------------------------------------------------------------- commands
def run_train(args: argparse.Namespace) -> int:
    from training.console import RichSteps
    from training.pipeline import train
    from training.prepare import TrainOptions

    model_dir = args.model_dir
    if model_dir is None:
        from stream_scorer.config import load_settings

        model_dir = load_settings().model_dir
    opts = TrainOptions(
        kind=args.model, data=args.data, framework=args.framework, train_start=args.train_start,
        train_days=args.train_days, delay_days=args.delay_days, test_days=args.test_days,
        validation_days=args.validation_days, seed=args.seed, model_dir=Path(model_dir), data_dir=args.data_dir,
        label_delay_days=args.label_delay_days, review_fpr=args.review_fpr, decline_fpr=args.decline_fpr,
        pos_weight=args.pos_weight, sim_entities=args.entities, sim_days=args.days, sim_end=args.end,
    )
    from training.data import DataError
    from training.export import OnnxParityError
    from training.split import SplitError
    from training.trainers import TrainingDataError

    console = Console(stderr=True)
    console.print(f"[bold]train {args.model}[/] ({args.framework}, data: {args.data or 'simulated'})")
    try:
        result = train(opts, RichSteps(console))
    except (DataError, SplitError, TrainingDataError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    except OnnxParityError as exc:
        console.print(f"[bold red]ONNX parity check failed:[/] {exc}")
        return 1
    Console().print(_summary(result))
    if mlflow_requested(args.mlflow, args.mlflow_alias):
        return _log_to_mlflow(result.artifact_dir, args.mlflow_alias, console)
    return 0


def _log_to_mlflow(artifact_dir: Path, alias: str | None, console: Console) -> int:
    from training.mlflow_log import MlflowLogError, log_training_run

    try:
        logged = log_training_run(artifact_dir, alias=alias)
    except MlflowLogError as exc:
        console.print(f"[bold red]error:[/] {exc} (the artifact is written: {artifact_dir})")
        return 1
    moved = f", alias {logged.alias!r}" if logged.alias else ""
    console.print(f"MLflow: run {logged.run_id}, registered {logged.model_name} version {logged.model_version}"
                  f"{moved} ({logged.tracking_uri})")
    return 0


def _summary(result: object) -> Table:
    from training.pipeline import TrainResult

    assert isinstance(result, TrainResult)
    meta = result.metadata
    metrics = meta["metrics"]
    table = Table(title=f"{meta['name']} {meta['version']} ({meta['algorithm']})", show_header=True)
    table.add_column("what")
    table.add_column("value", justify="right")
    keys = ["auc_roc", "average_precision", "brier"]
    if meta["name"] == "fraud":
        keys += ["baseline_logreg_average_precision", "card_precision_at_100", "precision_at_review",
                 "recall_at_review", "recall_at_decline"]
        keys += sorted(k for k in metrics if k.startswith("recall_at_review_"))
    else:
        keys += ["ndcg_at_10", "ndcg_at_10_item_popularity", "precision_at_relevant", "recall_at_relevant"]
    for key in keys:
        value = metrics.get(key)
        table.add_row(key, "n/a" if value is None else f"{value:.4f}")
    for name, t in meta["thresholds"].items():
        table.add_row(f"threshold {name}", f"{t:.6f}")
    table.add_row("onnx max |diff|", f"{metrics['onnx_max_abs_diff']:.2e}")
    table.add_row("artifact", str(result.artifact_dir))
    for step, seconds in result.timings.items():
        table.add_row(f"time: {step}", f"{seconds:.1f} s")
    return table


def run_materialize(args: argparse.Namespace) -> int:
    import asyncio

    from stream_scorer.config import load_settings
    from training.materialize import MaterializeError, materialize, summary_table

    console = Console(stderr=True)
    try:
        result = asyncio.run(materialize(load_settings(), args.data_dir, batch_size=args.batch_size,
                                         only=args.only, reset=args.reset,
                                         reset_if_changed=args.reset_if_changed, console=console))
    except MaterializeError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 1
    Console().print(summary_table(result))
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    import pandas as pd

    from training.simulate.sessions import SessionSimConfig, simulate_sessions
    from training.simulate.transactions import TransactionSimConfig, simulate_transactions

    sizes = {k: v for k, v in (("days", args.days),) if v is not None}
    if args.model == "fraud":
        if args.entities is not None:
            sizes["n_cards"] = args.entities
        sim = simulate_transactions(TransactionSimConfig(seed=args.seed, end=args.end, **sizes))
        arrival = sim.labels.set_index("transaction_id")["timestamp"]
        frame = sim.transactions.assign(label_timestamp=sim.transactions["transaction_id"].map(arrival))
    else:
        if args.entities is not None:
            sizes["n_users"] = args.entities
        frame = simulate_sessions(SessionSimConfig(seed=args.seed, end=args.end, **sizes)).events
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix.lower() == ".csv":
        times = [c for c in ("timestamp", "label_timestamp") if c in frame.columns]
        frame.assign(**{c: frame[c].map(lambda t: t.isoformat() if pd.notna(t) else "") for c in times}).to_csv(
            args.out, index=False)
    else:
        frame.to_parquet(args.out, index=False)
    Console().print(f"wrote {len(frame):,} rows to {args.out}")
    return 0
