"""End to end on small data: simulated and user files, artifact contract, versions, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stream_scorer.core.features import (
    FRAUD_DEFAULTS,
    FRAUD_FEATURE_NAMES,
    PERSONALIZATION_FEATURE_NAMES,
)
from tests.training.conftest import END
from training.__main__ import main
from training.artifacts import next_version, write_artifact
from training.export import onnx_scores
from training.pipeline import train
from training.prepare import TrainOptions

METADATA_KEYS = {"name", "version", "framework", "model_file", "onnx_file", "feature_names", "defaults",
                 "thresholds", "metrics", "score_baseline", "feature_baseline", "feature_importance",
                 "data_fingerprint", "data_source", "split", "created_at", "library_versions", "training_time_sec"}
FILES = {"metadata.json", "model.onnx", "report.md", "test_predictions.parquet", "pr_curve.png",
         "calibration.png", "feature_importance.png", "score_distribution.png"}


def _small(kind: str, tmp_path: Path, **extra: object) -> TrainOptions:
    entities, days = (500, 45) if kind == "fraud" else (250, 28)
    options: dict[str, object] = {"kind": kind, "model_dir": tmp_path / "artifacts", "data_dir": tmp_path / "data",
                                  "seed": 3, "sim_entities": entities, "sim_days": days, "sim_end": END}
    options.update(extra)
    return TrainOptions(**options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fraud_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(_small("fraud", tmp_path_factory.mktemp("fraud"))).artifact_dir


def test_fraud_artifact_follows_the_contract(fraud_artifact: Path) -> None:
    assert fraud_artifact.name == "v1" and fraud_artifact.parent.name == "fraud"
    assert FILES | {"model.json"} <= {p.name for p in fraud_artifact.iterdir()}
    meta = json.loads((fraud_artifact / "metadata.json").read_text())
    assert set(meta) >= METADATA_KEYS
    assert meta["name"] == "fraud" and meta["version"] == "v1" and meta["framework"] == "xgboost"
    assert meta["model_file"] == "model.json" and meta["onnx_file"] == "model.onnx"
    assert meta["feature_names"] == list(FRAUD_FEATURE_NAMES)
    assert meta["defaults"] == FRAUD_DEFAULTS
    assert set(meta["thresholds"]) == {"review", "decline"}
    assert 0 < meta["thresholds"]["review"] < meta["thresholds"]["decline"] < 1
    for key in ("auc_roc", "average_precision", "brier", "card_precision_at_100", "recall_at_review",
                "baseline_logreg_average_precision", "recall_at_review_compromised_card"):
        assert isinstance(meta["metrics"][key], float), key
    assert set(meta["feature_baseline"]) == set(FRAUD_FEATURE_NAMES)
    assert set(meta["feature_importance"]) == set(FRAUD_FEATURE_NAMES)
    assert sum(meta["feature_importance"].values()) == pytest.approx(1.0)
    assert len(meta["score_baseline"]["fractions"]) == len(meta["score_baseline"]["decile_edges"]) + 1
    assert len(meta["data_fingerprint"]) == 64
    assert meta["split"]["train_start"] < meta["split"]["test_start"]


def test_fraud_predictions_report_and_onnx_agree(fraud_artifact: Path) -> None:
    predictions = pd.read_parquet(fraud_artifact / "test_predictions.parquet")
    assert {"transaction_id", "score", "label", "scenario"} <= set(predictions.columns)
    meta = json.loads((fraud_artifact / "metadata.json").read_text())
    from sklearn.metrics import average_precision_score

    assert average_precision_score(predictions["label"], predictions["score"]) == pytest.approx(
        meta["metrics"]["average_precision"])
    report = (fraud_artifact / "report.md").read_text()
    assert f"{meta['metrics']['average_precision']:.4f}" in report
    assert "Recall per fraud scenario" in report and "Card precision@100" in report
    assert (fraud_artifact / "pr_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_history_is_saved_for_materialization(fraud_artifact: Path) -> None:
    data_dir = fraud_artifact.parents[2] / "data"
    manifest = json.loads((data_dir / "fraud" / "manifest.json").read_text())
    assert manifest["source"] == "simulated" and manifest["history_end"] == END.isoformat()
    saved = pd.read_parquet(data_dir / "fraud" / "transactions.parquet")
    assert len(saved) == manifest["transactions"]


def test_personalization_trains_end_to_end(tmp_path: Path) -> None:
    result = train(_small("personalization", tmp_path, framework="lightgbm"))
    meta = result.metadata
    assert meta["framework"] == "lightgbm" and meta["model_file"] == "model.txt"
    assert meta["feature_names"] == list(PERSONALIZATION_FEATURE_NAMES)
    assert set(meta["thresholds"]) == {"relevant"}
    assert 0 < meta["metrics"]["ndcg_at_10"] <= 1
    predictions = pd.read_parquet(result.artifact_dir / "test_predictions.parquet")
    assert {"event_id", "score", "label"} <= set(predictions.columns)
    assert FILES | {"model.txt"} <= {p.name for p in result.artifact_dir.iterdir()}


def test_user_csv_end_to_end_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "my_transactions.csv"
    assert main(["simulate", "fraud", "--out", str(csv), "--entities", "500", "--days", "45", "--seed", "3",
                 "--end", END.isoformat()]) == 0
    frame = pd.read_csv(csv)
    frame.drop(columns=["scenario", "mcc_code"]).to_csv(csv, index=False)  # only the documented minimum + country
    code = main(["train", "fraud", "--data", str(csv), "--framework", "sklearn-hgb", "--train-days", "12",
                 "--delay-days", "7", "--test-days", "5", "--model-dir", str(tmp_path / "models"),
                 "--data-dir", str(tmp_path / "data")])
    assert code == 0
    folder = tmp_path / "models" / "fraud" / "v1"
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["framework"] == "sklearn" and meta["model_file"] == "model.joblib"
    assert meta["data_source"].startswith("file:") and meta["data_source"].endswith("my_transactions.csv")
    assert meta["split"]["test_days"] == 5.0
    predictions = pd.read_parquet(folder / "test_predictions.parquet")
    assert len(predictions) > 0 and "scenario" not in predictions.columns
    out = capsys.readouterr().out
    assert "average_precision" in out and "fraud v1 (sklearn-hgb)" in out


def test_too_short_a_delay_for_the_label_arrivals_is_explained(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "tx.csv"
    assert main(["simulate", "fraud", "--out", str(csv), "--entities", "300", "--days", "40", "--seed", "3",
                 "--end", END.isoformat()]) == 0
    pd.read_csv(csv).drop(columns="label_timestamp").to_csv(csv, index=False)  # labels then arrive after 7 days
    code = main(["train", "fraud", "--data", str(csv), "--train-days", "9", "--delay-days", "1", "--test-days",
                 "4", "--model-dir", str(tmp_path / "m"), "--data-dir", str(tmp_path / "d")])
    assert code == 2
    assert "validation period needs both classes" in capsys.readouterr().err


def test_a_bad_user_file_fails_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("transaction_id,timestamp,card_id,merchant_id,transaction_amount,is_fraud\n"
                   "t1,2024-01-01T00:00:00Z,c1,m1,12,0\nt2,2024-01-01T00:01:00Z,c1,m1,twelve,0\n")
    assert main(["train", "fraud", "--data", str(csv), "--model-dir", str(tmp_path / "m")]) == 2
    assert "column 'transaction_amount', row 2" in capsys.readouterr().err


def test_next_version_and_atomic_write(tmp_path: Path) -> None:
    assert next_version(tmp_path, "fraud") == "v1"
    for name in ("v1", "v2", "v10", "latest", "v3.bak"):
        (tmp_path / "fraud" / name).mkdir(parents=True)
    assert next_version(tmp_path, "fraud") == "v11"

    def files(folder: Path, version: str) -> None:
        (folder / "model.json").write_text(version)

    folder = write_artifact(tmp_path, "fraud", {"framework": "xgboost"}, files)
    assert folder.name == "v11"
    assert json.loads((folder / "metadata.json").read_text())["version"] == "v11"
    assert (folder / "model.json").read_text() == "v11"
    assert not [p for p in (tmp_path / "fraud").iterdir() if p.name.startswith(".staging")]


def test_onnx_file_scores_the_test_rows_like_the_predictions_file(fraud_artifact: Path) -> None:
    meta = json.loads((fraud_artifact / "metadata.json").read_text())
    predictions = pd.read_parquet(fraud_artifact / "test_predictions.parquet")
    assert meta["metrics"]["onnx_max_abs_diff"] <= 1e-5
    x = np.zeros((3, len(meta["feature_names"])), dtype=np.float32)
    scores = onnx_scores((fraud_artifact / "model.onnx").read_bytes(), x)
    assert scores.shape == (3,) and len(predictions) > 0
