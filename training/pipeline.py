"""``train fraud|personalization``: prepare, fit, evaluate, export ONNX, write the versioned artifact."""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training import plots
from training.artifacts import write_artifact
from training.baselines import feature_baseline, fingerprint, score_baseline
from training.console import SilentSteps, Steps
from training.evaluate import (
    at_threshold,
    card_precision_at_k,
    f1_optimal_threshold,
    ndcg_at_k,
    ranking_metrics,
    reliability,
    scenario_recall,
    thresholds_at_fpr,
)
from training.export import OnnxExport, export_onnx
from training.frameworks import ONNX_INPUT, ONNX_PROBABILITIES, FitData, FittedModel, normalized_importance
from training.prepare import Prepared, TrainOptions, prepare
from training.report import write_report
from training.trainers import DEFAULT_POS_WEIGHT, positive_weight, train_model

BASELINE = "sklearn-logreg"
_LIBRARIES = ("numpy", "pandas", "scikit-learn", "xgboost", "lightgbm", "onnx", "onnxruntime", "onnxmltools",
              "skl2onnx")


@dataclass(slots=True)
class Evaluation:
    """Everything the report and the metadata need about the fitted model."""

    metrics: dict[str, float]
    thresholds: dict[str, float]
    test: pd.DataFrame
    """Test rows: ids, ``timestamp``, ``label``, ``score`` (and ``baseline_score``, ``scenario`` for fraud)."""
    validation_scores: np.ndarray
    reliability: pd.DataFrame
    importance: dict[str, float]
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    card_precision: pd.DataFrame | None = None
    scenario_recall: pd.DataFrame | None = None
    onnx: OnnxExport | None = None
    test_x: np.ndarray | None = None
    """Test-period features as float32 (the ONNX parity check runs on all of them)."""


@dataclass(frozen=True, slots=True)
class TrainResult:
    artifact_dir: Path
    metadata: dict[str, Any]
    timings: dict[str, float]


def train(opts: TrainOptions, steps: Steps | None = None) -> TrainResult:
    steps = steps or SilentSteps()
    started = time.perf_counter()
    prepared = prepare(opts, steps)
    for note in prepared.split.notes:
        steps.note(note)
    data, periods = _fit_data(prepared, opts)
    with steps.step(f"train {opts.framework}"):
        model = train_model(opts.framework, data)
    baseline = None
    if prepared.kind == "fraud" and opts.baseline:
        with steps.step("train logistic-regression baseline"):
            baseline = model if opts.framework == BASELINE else train_model(BASELINE, data)
    with steps.step("evaluate"):
        evaluation = _evaluate(prepared, opts, model, baseline, data, periods)
    with steps.step("export ONNX (parity check)"):
        assert evaluation.test_x is not None
        evaluation.onnx = export_onnx(model, evaluation.test_x)
        evaluation.metrics["onnx_max_abs_diff"] = evaluation.onnx.max_abs_diff
    training_time = time.perf_counter() - started
    metadata = _metadata(prepared, opts, model, data, evaluation, training_time)
    with steps.step("write artifact"):
        folder = write_artifact(opts.model_dir, prepared.kind, metadata,
                                lambda path, version: _write_files(path, version, prepared, model, evaluation,
                                                                   {**metadata, "version": version}))
    timings = dict(steps.timings)
    timings["total"] = time.perf_counter() - started
    return TrainResult(folder, {**metadata, "version": folder.name, "name": prepared.kind}, timings)


# --------------------------------------------------------------------------------------------------- fitting
def _fit_data(prepared: Prepared, opts: TrainOptions) -> tuple[FitData, dict[str, np.ndarray]]:
    periods = {name: prepared.mask(name) for name in ("fit", "validation", "test")}
    for name, mask in periods.items():
        if not mask.any():
            raise ValueError(f"the {name} period of the split has no rows: {prepared.split.as_dict()}")
    x = prepared.frame[list(prepared.feature_names)].to_numpy(dtype=np.float32)
    y = prepared.frame["train_label"].to_numpy(dtype=np.int8)
    fit, val = periods["fit"], periods["validation"]
    data = FitData(x[fit], y[fit], x[val], y[val], prepared.feature_names,
                   positive_weight(y[fit], opts.pos_weight or DEFAULT_POS_WEIGHT[prepared.kind]), opts.seed)
    return data, periods


def _evaluate(prepared: Prepared, opts: TrainOptions, model: FittedModel, baseline: FittedModel | None,
              data: FitData, periods: dict[str, np.ndarray]) -> Evaluation:
    frame = prepared.frame
    test_rows = frame.loc[periods["test"]].reset_index(drop=True)
    test_x = test_rows[list(prepared.feature_names)].to_numpy(dtype=np.float32)
    y_test = test_rows["label"].to_numpy(dtype=np.int8)
    val_scores = model.predict(data.x_val)
    scores = model.predict(test_x)
    id_col = "transaction_id" if prepared.kind == "fraud" else "event_id"
    keep = [id_col, "card_id", "scenario"] if prepared.kind == "fraud" else [id_col, "session_id", "item_id"]
    test = test_rows[[*keep, "timestamp"]].assign(label=y_test, score=scores)
    if "scenario" in test.columns and test["scenario"].isna().all():
        test = test.drop(columns="scenario")
    metrics = ranking_metrics(y_test, scores)
    metrics["validation_average_precision"] = ranking_metrics(data.y_val, val_scores)["average_precision"]
    metrics["positive_weight"] = data.pos_weight
    evaluation = Evaluation(metrics, {}, test, val_scores, reliability(y_test, scores),
                            normalized_importance(model, data))
    if prepared.kind == "fraud":
        evaluation.thresholds = thresholds_at_fpr(val_scores, data.y_val,
                                                  {"review": opts.review_fpr, "decline": opts.decline_fpr})
        for name, t in evaluation.thresholds.items():
            metrics.update(at_threshold(y_test, scores, t, name))
        cards = card_precision_at_k(test, pd.Timestamp(prepared.split.test_start))
        evaluation.card_precision = cards.per_day
        metrics["card_precision_at_100"] = cards.mean
        if "scenario" in test.columns:
            table = scenario_recall(test, evaluation.thresholds)
            evaluation.scenario_recall = table
            for row in table.itertuples(index=False):
                for name in evaluation.thresholds:
                    metrics[f"recall_at_{name}_{row.scenario}"] = float(getattr(row, f"recall_at_{name}"))
        if baseline is not None:
            base_scores = baseline.predict(test_x)
            test["baseline_score"] = base_scores
            base = ranking_metrics(y_test, base_scores)
            base["card_precision_at_100"] = card_precision_at_k(
                test.assign(score=base_scores), pd.Timestamp(prepared.split.test_start)).mean
            evaluation.baseline_metrics = base
            metrics.update({f"baseline_logreg_{k}": v for k, v in base.items()
                            if k in ("auc_roc", "average_precision", "brier", "card_precision_at_100")})
    else:
        evaluation.thresholds = {"relevant": f1_optimal_threshold(val_scores, data.y_val)}
        metrics.update(at_threshold(y_test, scores, evaluation.thresholds["relevant"], "relevant"))
        metrics["ndcg_at_10"] = ndcg_at_k(test)
        shuffled = np.random.default_rng(opts.seed).random(len(test))
        metrics["ndcg_at_10_random"] = ndcg_at_k(test.assign(score=shuffled))
        popularity = test_rows["item_views_7d"].to_numpy() + shuffled * 1e-6
        metrics["ndcg_at_10_item_popularity"] = ndcg_at_k(test.assign(score=popularity))
    evaluation.test_x = test_x
    return evaluation


# -------------------------------------------------------------------------------------------------- metadata
def _metadata(prepared: Prepared, opts: TrainOptions, model: FittedModel, data: FitData, evaluation: Evaluation,
              training_time: float) -> dict[str, Any]:
    train_rows = prepared.frame.loc[prepared.mask("fit") | prepared.mask("validation"),
                                    [*prepared.feature_names, "train_label"]]
    x_train = train_rows[list(prepared.feature_names)].to_numpy(dtype=np.float64)
    return {
        "name": prepared.kind,
        "version": None,
        "framework": model.framework,
        "algorithm": model.algorithm,
        "model_file": model.model_file,
        "onnx_file": "model.onnx",
        "onnx_input": ONNX_INPUT,
        "onnx_output": ONNX_PROBABILITIES,
        "input_dtype": "float32",
        "feature_names": list(prepared.feature_names),
        "defaults": {name: float(prepared.defaults[name]) for name in prepared.feature_names},
        "thresholds": {k: float(v) for k, v in evaluation.thresholds.items()},
        "metrics": _finite(evaluation.metrics),
        "score_baseline": score_baseline(evaluation.validation_scores),
        "feature_baseline": feature_baseline(x_train, prepared.feature_names),
        "feature_importance": {name: float(share) for name, share in evaluation.importance.items()},
        "data_fingerprint": fingerprint(train_rows),
        "data_source": prepared.data_source,
        "history": prepared.history,
        "split": prepared.split.as_dict(),
        "hyperparameters": {k: v for k, v in model.params.items() if isinstance(v, str | int | float | bool)},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "library_versions": _library_versions(),
        "training_time_sec": round(training_time, 3),
    }


def _finite(values: dict[str, float]) -> dict[str, float | None]:
    """JSON has no NaN: an undefined metric (e.g. precision when nothing was flagged) becomes null."""
    return {k: (float(v) if v is not None and math.isfinite(float(v)) else None) for k, v in values.items()}


def _library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            try:
                versions[name] = importlib_metadata.version(f"{name}-cpu")
            except importlib_metadata.PackageNotFoundError:
                versions[name] = "not installed"
    return versions


def _write_files(folder: Path, version: str, prepared: Prepared, model: FittedModel, evaluation: Evaluation,
                 metadata: dict[str, Any]) -> None:
    model.save(folder / model.model_file)
    assert evaluation.onnx is not None
    (folder / "model.onnx").write_bytes(evaluation.onnx.model)
    evaluation.test.drop(columns=["card_id", "session_id", "item_id"], errors="ignore").to_parquet(
        folder / "test_predictions.parquet", index=False)
    labels = ("genuine", "fraud") if prepared.kind == "fraud" else ("not converted", "converted")
    y, scores = evaluation.test["label"].to_numpy(), evaluation.test["score"].to_numpy()
    curves = {model.algorithm: scores}
    if "baseline_score" in evaluation.test.columns:
        curves["logistic regression (baseline)"] = evaluation.test["baseline_score"].to_numpy()
    title = f"{prepared.kind} {version} ({model.algorithm}), test period"
    plots.pr_curve(folder / plots.PR_CURVE, y, curves, f"Precision-recall, {title}")
    plots.calibration(folder / plots.CALIBRATION, evaluation.reliability, f"Calibration, {title}")
    plots.feature_importance(folder / plots.FEATURE_IMPORTANCE, evaluation.importance,
                             f"Feature importance ({model.algorithm})")
    plots.score_distribution(folder / plots.SCORE_DISTRIBUTION, y, scores, evaluation.thresholds,
                             f"Scores, {title}", labels)
    write_report(folder / "report.md", prepared, evaluation, metadata)
