"""``report.md`` of an artifact: every number below is computed from the run, none is typed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from training import plots

if TYPE_CHECKING:
    from training.pipeline import Evaluation
    from training.prepare import Prepared

_METRIC_LABELS = {
    "auc_roc": "AUC ROC", "average_precision": "average precision (AP)", "brier": "Brier score",
    "expected_calibration_error": "expected calibration error",
    "card_precision_at_100": "card precision@100 (mean per day)", "positive_rate": "positive rate",
    "rows": "rows", "positives": "positives", "mean_score": "mean score",
}


def write_report(path: Path, prepared: Prepared, evaluation: Evaluation, metadata: dict[str, Any]) -> None:
    lines = _header(prepared, metadata) + _data_section(prepared, metadata)
    lines += _metrics_section(prepared, evaluation)
    lines += _thresholds_section(prepared, evaluation)
    if evaluation.scenario_recall is not None and len(evaluation.scenario_recall):
        lines += ["## Recall per fraud scenario (test period)", "",
                  "Share of each scenario's fraudulent transactions scored at or above each threshold.", "",
                  *_table(evaluation.scenario_recall), ""]
    if evaluation.card_precision is not None:
        table = evaluation.card_precision.assign(day=evaluation.card_precision["day"].dt.strftime("%Y-%m-%d %H:%M"))
        lines += ["## Card precision@100 per test day", "",
                  "Cards ranked by their highest score of the day; cards already caught on an earlier test day "
                  "are not ranked again.", "", *_table(table), ""]
    lines += _calibration_section(evaluation)
    top = sorted(evaluation.importance.items(), key=lambda kv: -kv[1])[:10]
    lines += ["## Feature importance", "", f"![feature importance]({plots.FEATURE_IMPORTANCE})", "",
              *_table(pd.DataFrame(top, columns=["feature", "share"])), ""]
    onnx = evaluation.onnx
    if onnx is not None:
        lines += ["## ONNX export", "",
                  f"`model.onnx` reproduces the native model's probabilities on all {onnx.rows_checked:,} "
                  f"test rows: largest absolute difference {onnx.max_abs_diff:.3g} (tolerance 1e-05). "
                  f"Input `{metadata['onnx_input']}` (float32, feature order as in `metadata.json`), output "
                  f"`{metadata['onnx_output']}` (column 1 = positive class).", ""]
    path.write_text("\n".join(lines) + "\n")


def _header(prepared: Prepared, metadata: dict[str, Any]) -> list[str]:
    return [
        f"# {prepared.kind} model {metadata['version']} ({metadata['algorithm']})", "",
        f"- created: {metadata['created_at']}",
        f"- data: {metadata['data_source']}",
        f"- training time: {metadata['training_time_sec']:.1f} s (data, features, fit, evaluation, export)",
        f"- data fingerprint (sha256 of the training frame): `{metadata['data_fingerprint'][:16]}...`",
        f"- positive-class weight: {metadata['metrics'].get('positive_weight', 1.0):.2f}", "",
    ]


def _data_section(prepared: Prepared, metadata: dict[str, Any]) -> list[str]:
    s = prepared.split
    frame = prepared.frame
    periods = [("warm-up (features only)", s.history_start, s.train_start, None),
               ("fit", s.train_start, s.validation_start, "fit"),
               ("validation", s.validation_start, s.train_end, "validation"),
               ("delay (left out)", s.train_end, s.test_start, None),
               ("test", s.test_start, s.test_end, "test")]
    rows = []
    for name, start, end, mask_name in periods:
        if end <= start:
            continue
        in_period = (frame["timestamp"] >= start) & (frame["timestamp"] < end)
        label = "train_label" if mask_name in ("fit", "validation") else "label"
        rows.append({"period": name, "from": start.strftime("%Y-%m-%d %H:%M"), "to": end.strftime("%Y-%m-%d %H:%M"),
                     "rows": int(in_period.sum()), "positives": int(frame.loc[in_period, label].sum())})
    lines = ["## Data and split", "", *_table(pd.DataFrame(rows)), ""]
    if prepared.kind == "fraud":
        lines += ["Training labels (fit, validation) count a fraud only if its chargeback had arrived by "
                  f"{s.label_cutoff:%Y-%m-%d %H:%M} (training time); test labels are the eventual truth.", ""]
    lines += [f"Note: {note}" for note in s.notes]
    return [*lines, ""] if s.notes else lines


def _metrics_section(prepared: Prepared, evaluation: Evaluation) -> list[str]:
    keys = ["auc_roc", "average_precision", "brier", "expected_calibration_error"]
    if prepared.kind == "fraud":
        keys.append("card_precision_at_100")
    keys += ["positive_rate", "mean_score", "rows", "positives"]
    base = evaluation.baseline_metrics
    rows = []
    for key in keys:
        row = {"metric": _METRIC_LABELS.get(key, key), "model": _fmt(evaluation.metrics.get(key))}
        if base:
            row["logistic regression baseline"] = _fmt(base.get(key))
        rows.append(row)
    if prepared.kind == "personalization":
        for key, label in (("ndcg_at_10", "NDCG@10 per session (model)"),
                           ("ndcg_at_10_item_popularity", "NDCG@10, ranking by item popularity"),
                           ("ndcg_at_10_random", "NDCG@10, random ranking")):
            rows.append({"metric": label, "model": _fmt(evaluation.metrics.get(key))})
    lines = ["## Test-period metrics", "", f"![precision-recall curve]({plots.PR_CURVE})", "",
             *_table(pd.DataFrame(rows)), ""]
    if base:
        delta = evaluation.metrics["average_precision"] - base["average_precision"]
        verdict = "beats" if delta > 0 else "does NOT beat"
        lines += [f"The model {verdict} the logistic-regression baseline on average precision by {delta:+.4f}.", ""]
    if prepared.kind == "personalization":
        lines += ["NDCG@10 is averaged over test sessions with at least one converted view; relevance = the "
                  "view's item was bought later in the session.", ""]
    return lines


def _thresholds_section(prepared: Prepared, evaluation: Evaluation) -> list[str]:
    m = evaluation.metrics
    rows = []
    for name, t in sorted(evaluation.thresholds.items(), key=lambda kv: kv[1]):
        rows.append({"threshold": name, "score >=": f"{t:.6f}", "test precision": _fmt(m.get(f"precision_at_{name}")),
                     "test recall": _fmt(m.get(f"recall_at_{name}")), "test FPR": _fmt(m.get(f"fpr_at_{name}")),
                     "test alert rate": _fmt(m.get(f"alert_rate_at_{name}"))})
    if prepared.kind == "fraud":
        intro = ("Derived on the validation period at target false-positive rates; serving maps score >= decline "
                 "to decline/high, >= review to review/medium, else approve/low.")
    else:
        intro = "Derived on the validation period: the F1-optimal score above which an item counts as relevant."
    return ["## Decision thresholds", "", intro, "", f"![score distribution]({plots.SCORE_DISTRIBUTION})", "",
            *_table(pd.DataFrame(rows)), ""]


def _calibration_section(evaluation: Evaluation) -> list[str]:
    m = evaluation.metrics
    table = evaluation.reliability
    return ["## Calibration", "", f"![calibration]({plots.CALIBRATION})", "",
            f"Brier score {m['brier']:.5f}; expected calibration error (row-weighted gap over the bins below) "
            f"{m['expected_calibration_error']:.5f} "
            f"(mean predicted {m['mean_score']:.5f} vs observed rate {m['positive_rate']:.5f}).", "",
            *_table(table[["score_from", "score_to", "rows", "mean_score", "positive_rate"]]), ""]


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:,.0f}" if value.is_integer() and abs(value) >= 10 else f"{value:.4f}"
    return str(value)


def _table(frame: pd.DataFrame) -> Sequence[str]:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return [header, rule, *body]
