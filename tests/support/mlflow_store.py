"""Throwaway local MLflow stores for the tests of the optional ``mlflow`` extra."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_mlflow() -> ModuleType:
    """``pytest.importorskip("mlflow")``, except under ``CI=true``: CI installs the extra, so there a missing
    mlflow fails the test instead of skipping it."""
    if IN_CI:
        try:
            import mlflow
        except ImportError as exc:
            pytest.fail(f"mlflow is not installed under CI=true (make install adds the mlflow extra): {exc}",
                        pytrace=False)
        return mlflow
    return pytest.importorskip("mlflow", reason="the optional mlflow extra is not installed")


def empty_store(template_dir: Path) -> Path:
    """An empty SQLite tracking + registry database with MLflow's tables, made once (creating the tables runs
    MLflow's migrations, seconds) and copied per test by :func:`new_store`."""
    require_mlflow()
    from mlflow import MlflowClient

    db = template_dir / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()  # creates and migrates the tables
    return db


def new_store(template_db: Path, root: Path, experiment: str) -> str:
    """A fresh store under ``root`` (its own database copy) whose ``experiment`` keeps its run artifacts under
    ``root / "mlartifacts"``, not in the working directory. Returns the tracking URI."""
    from mlflow import MlflowClient

    db = root / "mlflow.db"
    shutil.copyfile(template_db, db)
    uri = f"sqlite:///{db}"
    MlflowClient(tracking_uri=uri).create_experiment(experiment, artifact_location=(root / "mlartifacts").as_uri())
    return uri
