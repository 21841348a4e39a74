"""Loading a model by ``models:/<name>/<alias>`` from a throwaway SQLite MLflow registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stream_scorer.core.features import FRAUD_FEATURE_NAMES
from stream_scorer.models.base import ModelLoadError
from stream_scorer.models.loader import load_model
from stream_scorer.models.mlflow_source import fetch_mlflow_model, parse_models_uri
from tests.support.artifacts import write_xgboost_artifact
from training.mlflow_log import log_training_run


def _rows(n: int = 200) -> np.ndarray:
    return np.random.default_rng(1).gamma(1.5, 2.0, size=(n, len(FRAUD_FEATURE_NAMES)))


def _version(folder: Path) -> str:
    return str(json.loads((folder / "metadata.json").read_text())["version"])


def test_a_champion_fetched_from_mlflow_scores_like_the_original_folder(mlflow_uri: str, tmp_path: Path) -> None:
    original = write_xgboost_artifact(tmp_path / "models", "fraud", "v1")
    log_training_run(original, tracking_uri=mlflow_uri, alias="champion")

    folder = fetch_mlflow_model("models:/fraud/champion", tmp_path / "cache", tracking_uri=mlflow_uri)

    assert folder == tmp_path / "cache" / "fraud" / "1"
    assert {p.name for p in folder.iterdir()} == {p.name for p in original.iterdir()}
    fetched = load_model(folder, expected_features=FRAUD_FEATURE_NAMES)
    reference = load_model(original, expected_features=FRAUD_FEATURE_NAMES)
    assert fetched.version == "v1"
    np.testing.assert_array_equal(fetched.predict(_rows()), reference.predict(_rows()))
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".download")]


def test_moving_the_alias_fetches_the_other_version(mlflow_uri: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    log_training_run(write_xgboost_artifact(tmp_path / "models", "fraud", "v1"), tracking_uri=mlflow_uri,
                     alias="champion")
    assert _version(fetch_mlflow_model("models:/fraud/champion", cache, mlflow_uri)) == "v1"

    log_training_run(write_xgboost_artifact(tmp_path / "models", "fraud", "v2", seed=1), tracking_uri=mlflow_uri,
                     alias="champion")

    moved = fetch_mlflow_model("models:/fraud/champion", cache, mlflow_uri)
    assert moved == cache / "fraud" / "2" and _version(moved) == "v2"
    assert _version(fetch_mlflow_model("models:/fraud/1", cache, mlflow_uri)) == "v1"
    assert fetch_mlflow_model("models:/fraud@champion", cache, mlflow_uri) == moved
    v1 = load_model(cache / "fraud" / "1", expected_features=FRAUD_FEATURE_NAMES)
    v2 = load_model(moved, expected_features=FRAUD_FEATURE_NAMES)
    assert not np.array_equal(v1.predict(_rows()), v2.predict(_rows()))


def test_a_cached_version_is_reused_and_an_incomplete_one_replaced(mlflow_uri: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.artifacts

    cache = tmp_path / "cache"
    log_training_run(write_xgboost_artifact(tmp_path / "models", "fraud"), tracking_uri=mlflow_uri,
                     alias="champion")
    (cache / "fraud" / "1").mkdir(parents=True)
    (cache / "fraud" / "1" / "model.json").write_text("half a download")  # no metadata.json: not complete

    folder = fetch_mlflow_model("models:/fraud/champion", cache, mlflow_uri)
    assert (folder / "model.json").read_text() != "half a download"

    def no_download(**_: object) -> str:
        raise AssertionError("a complete cached version is downloaded again")

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", no_download)
    assert fetch_mlflow_model("models:/fraud/champion", cache, mlflow_uri) == folder


def test_an_unknown_alias_model_or_version_is_a_model_load_error(mlflow_uri: str, tmp_path: Path) -> None:
    log_training_run(write_xgboost_artifact(tmp_path / "models", "fraud"), tracking_uri=mlflow_uri,
                     alias="champion")
    cache = tmp_path / "cache"

    with pytest.raises(ModelLoadError, match=r"'fraud' has no alias 'challenger' \(aliases: champion\)"):
        fetch_mlflow_model("models:/fraud/challenger", cache, mlflow_uri)
    with pytest.raises(ModelLoadError, match="no registered model 'personalization'"):
        fetch_mlflow_model("models:/personalization/champion", cache, mlflow_uri)
    with pytest.raises(ModelLoadError, match="'fraud' has no version 7"):
        fetch_mlflow_model("models:/fraud/7", cache, mlflow_uri)
    assert not (cache / "fraud").exists() or not list((cache / "fraud").iterdir())


def test_artifacts_without_metadata_are_refused(mlflow_uri: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    not_ours = tmp_path / "not-ours"
    not_ours.mkdir()
    (not_ours / "model.pkl").write_bytes(b"\x80")
    client = MlflowClient(tracking_uri=mlflow_uri)
    client.create_registered_model("fraud")
    client.create_model_version("fraud", not_ours.as_uri())
    cache = tmp_path / "cache"

    with pytest.raises(ModelLoadError, match=r"models:/fraud/1: no metadata\.json in the registered artifacts"):
        fetch_mlflow_model("models:/fraud/1", cache, mlflow_uri)
    assert list((cache / "fraud").iterdir()) == []  # the staging folder is gone, nothing looks cached


@pytest.mark.parametrize("uri", ["fraud/champion", "models:/fraud", "models:/fraud/champion/extra", "runs:/x/y"])
def test_a_uri_that_is_not_a_registry_uri_is_refused(uri: str, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a model registry URI"):
        fetch_mlflow_model(uri, tmp_path)


def test_uri_forms() -> None:
    assert parse_models_uri("models:/fraud/champion") == ("fraud", "champion")
    assert parse_models_uri("models:/fraud/3") == ("fraud", "3")
    assert parse_models_uri("models:/fraud@challenger") == ("fraud", "challenger")


def test_without_the_extra_the_error_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # makes `import mlflow` raise ImportError
    with pytest.raises(ModelLoadError, match=r"pip install 'stream-scorer\[mlflow\]'"):
        fetch_mlflow_model("models:/fraud/champion", tmp_path)


def test_importing_the_serving_and_training_code_does_not_import_mlflow() -> None:
    code = ("import sys, stream_scorer.models.mlflow_source, training.mlflow_log, training.cli, http_api.app; "
            "sys.exit('mlflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_routing_entry_can_name_an_mlflow_alias(mlflow_uri: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_scorer.bootstrap import MODEL_FEATURES
    from stream_scorer.models import admin
    from stream_scorer.models.registry import ModelRegistry

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    model_dir = tmp_path / "models"
    log_training_run(write_xgboost_artifact(tmp_path / "trained", "fraud", "v7", seed=3), tracking_uri=mlflow_uri,
                     alias="champion")
    write_xgboost_artifact(model_dir, "fraud", "v1")
    registry = ModelRegistry(model_dir, expected_features=MODEL_FEATURES)
    registry.refresh("fraud")
    admin.promote(registry, "fraud", "models:/fraud/champion")
    registry.refresh("fraud")
    assert registry.get("fraud").version == "v7"
    assert (model_dir / ".mlflow-cache" / "fraud" / "1" / "metadata.json").is_file()
    log_training_run(write_xgboost_artifact(tmp_path / "trained", "fraud", "v8", seed=4), tracking_uri=mlflow_uri,
                     alias="champion")
    assert registry.refresh("fraud") is False  # the routing file did not change: aliases resolve on reload
    assert registry.refresh("fraud", force=True) is True
    assert registry.get("fraud").version == "v8"
    with pytest.raises(Exception, match="nope"):
        admin.promote(registry, "fraud", "models:/fraud/nope")
    assert registry.get("fraud").version == "v8"


def test_moving_the_alias_swaps_the_model_at_the_next_lookup(mlflow_uri: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_scorer.bootstrap import MODEL_FEATURES
    from stream_scorer.models import admin
    from stream_scorer.models.registry import ModelRegistry

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    now = [0.0]
    model_dir = tmp_path / "models"
    log_training_run(write_xgboost_artifact(tmp_path / "trained", "fraud", "v7", seed=3), tracking_uri=mlflow_uri,
                     alias="champion")
    write_xgboost_artifact(model_dir, "fraud", "v1")
    registry = ModelRegistry(model_dir, expected_features=MODEL_FEATURES, alias_poll_interval=30.0,
                             clock=lambda: now[0])
    registry.refresh("fraud")
    admin.promote(registry, "fraud", "models:/fraud/champion")
    assert registry.refresh("fraud") is True and registry.get("fraud").version == "v7"

    log_training_run(write_xgboost_artifact(tmp_path / "trained", "fraud", "v8", seed=4), tracking_uri=mlflow_uri,
                     alias="champion")
    now[0] = 10.0  # within the interval: the last lookup stands
    assert not registry.changed_on_disk("fraud") and registry.refresh("fraud") is False
    now[0] = 31.0
    assert registry.changed_on_disk("fraud")
    assert registry.refresh("fraud") is True and registry.get("fraud").version == "v8"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'missing' / 'mlflow.db'}")
    now[0] = 62.0  # the registry does not answer: the current route keeps serving, nothing is reloaded
    assert not registry.changed_on_disk("fraud") and registry.refresh("fraud") is False
    assert registry.get("fraud").version == "v8"
