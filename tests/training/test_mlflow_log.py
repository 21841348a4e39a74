"""Logging training runs to a throwaway SQLite MLflow store: params, metrics, the artifact folder, the registry."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.artifacts import write_xgboost_artifact
from tests.training.conftest import END
from training.__main__ import main
from training.mlflow_log import (
    ARTIFACT_PATH,
    VERSION_TAG,
    MlflowLogError,
    log_training_run,
    mlflow_requested,
    run_metrics,
    run_params,
)


def _artifact_files(client: Any, run_id: str, path: str) -> set[str]:
    return {f.path.removeprefix(f"{path}/") for f in client.list_artifacts(run_id, path)}


def test_train_with_a_tracking_uri_logs_the_run_and_registers_the_version(
        mlflow_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)  # logs without --mlflow, as documented
    code = main(["train", "personalization", "--framework", "sklearn-logreg", "--entities", "250", "--days", "28",
                 "--seed", "3", "--end", END.isoformat(), "--model-dir", str(tmp_path / "models"),
                 "--data-dir", str(tmp_path / "data"), "--mlflow-alias", "challenger"])
    assert code == 0, capsys.readouterr().err
    folder = tmp_path / "models" / "personalization" / "v1"
    metadata = json.loads((folder / "metadata.json").read_text())

    client = MlflowClient(tracking_uri=mlflow_uri)
    version = client.get_model_version_by_alias("personalization", "challenger")
    assert str(version.version) == "1" and version.tags[VERSION_TAG] == "v1"
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "personalization v1"
    assert run.data.tags[VERSION_TAG] == "v1"
    params = run.data.params
    assert params["algorithm"] == metadata["algorithm"] == "sklearn-logreg"
    assert params["data_fingerprint"] == metadata["data_fingerprint"]
    assert params["split.train_start"] == metadata["split"]["train_start"]
    assert {k: params[k] for k in metadata["hyperparameters"]} == {
        k: str(v) for k, v in metadata["hyperparameters"].items()}
    expected = {k: v for k, v in metadata["metrics"].items() if v is not None}
    assert run.data.metrics == pytest.approx(expected) and "ndcg_at_10" in expected
    assert _artifact_files(client, run.info.run_id, ARTIFACT_PATH) == {p.name for p in folder.iterdir()}
    assert "personalization version 1, alias 'challenger'" in " ".join(capsys.readouterr().err.split())
    assert not {"mlruns", "mlflow.db"} & {p.name for p in Path.cwd().iterdir()}  # nothing in the working dir


def test_each_logged_version_is_a_new_registry_version_and_the_alias_moves(mlflow_uri: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    v1 = write_xgboost_artifact(tmp_path / "models", "fraud", "v1")
    v2 = write_xgboost_artifact(tmp_path / "models", "fraud", "v2", seed=1)

    first = log_training_run(v1, tracking_uri=mlflow_uri, alias="champion")
    second = log_training_run(v2, tracking_uri=mlflow_uri)
    client = MlflowClient(tracking_uri=mlflow_uri)
    assert (first.model_version, second.model_version) == ("1", "2")
    assert client.get_model_version_by_alias("fraud", "champion").tags[VERSION_TAG] == "v1"
    assert second.alias is None and client.get_model_version("fraud", "2").tags[VERSION_TAG] == "v2"

    log_training_run(v2, tracking_uri=mlflow_uri, alias="champion")  # promoting v2 again: a third version
    assert str(client.get_model_version_by_alias("fraud", "champion").version) == "3"
    assert _artifact_files(client, first.run_id, ARTIFACT_PATH) == {"metadata.json", "model.json"}


def test_an_invalid_alias_is_a_logging_error(mlflow_uri: str, tmp_path: Path) -> None:
    folder = write_xgboost_artifact(tmp_path / "models", "fraud")
    with pytest.raises(MlflowLogError, match="latest"):
        log_training_run(folder, tracking_uri=mlflow_uri, alias="latest")  # reserved by MLflow


def test_a_folder_without_metadata_is_refused(mlflow_uri: str, tmp_path: Path) -> None:
    with pytest.raises(MlflowLogError, match=r"no metadata\.json"):
        log_training_run(tmp_path, tracking_uri=mlflow_uri)


def test_without_the_extra_the_error_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # makes `import mlflow` raise ImportError
    with pytest.raises(MlflowLogError, match=r"pip install 'stream-scorer\[mlflow\]'"):
        log_training_run(tmp_path)


@pytest.mark.parametrize(("flag", "alias", "environ", "expected"), [
    (None, None, {}, False),
    (None, None, {"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}, True),
    (None, "challenger", {}, True),
    (True, None, {}, True),
    (False, None, {"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}, False),
])
def test_when_a_run_is_logged(flag: bool | None, alias: str | None, environ: dict[str, str], expected: bool) -> None:
    assert mlflow_requested(flag, alias, environ) is expected


def test_params_and_metrics_from_the_metadata() -> None:
    metadata = {"algorithm": "xgboost", "framework": "xgboost", "data_fingerprint": "ab" * 32,
                "hyperparameters": {"max_depth": 6, "eta": 0.1},
                "split": {"train_start": "2024-01-01", "test_days": 7.0},
                "metrics": {"auc_roc": 0.91, "precision_at_review": None, "note": "text", "flag": True, "n": 3}}
    assert run_params(metadata) == {"max_depth": "6", "eta": "0.1", "split.train_start": "2024-01-01",
                                    "split.test_days": "7.0", "algorithm": "xgboost", "framework": "xgboost",
                                    "data_fingerprint": "ab" * 32}
    assert run_metrics(metadata) == {"auc_roc": 0.91, "n": 3.0}
