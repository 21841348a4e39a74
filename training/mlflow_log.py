"""Log a finished training run to MLflow (the optional ``mlflow`` extra).

One MLflow run per artifact: params (algorithm, hyperparameters, data fingerprint, split), the metadata's metrics,
the whole version folder as run artifacts, and a registered model version under the model's name whose tag
``stream_scorer_version`` carries our ``vN``. The folder is stored as-is: our artifact format stays the source of
truth and ``stream_scorer.models.mlflow_source`` downloads it back for ``load_model``. mlflow is imported inside
the functions, so the training package imports without the extra.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.artifacts import METADATA_FILE, read_metadata

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
DEFAULT_EXPERIMENT = "stream-scorer"
ARTIFACT_PATH = "artifact"
"""Where the version folder goes inside the run's artifacts; the registered version's source points at it."""
VERSION_TAG = "stream_scorer_version"
INSTALL_HINT = "pip install 'stream-scorer[mlflow]'"


class MlflowLogError(RuntimeError):
    """MLflow logging was asked for and could not be done (extra missing, store unreachable, bad alias...)."""


@dataclass(frozen=True, slots=True)
class LoggedRun:
    tracking_uri: str
    experiment_id: str
    run_id: str
    model_name: str
    model_version: str
    """The MLflow registry's version number (``"3"``); ours (``v7``) is the ``stream_scorer_version`` tag."""
    alias: str | None


def mlflow_requested(flag: bool | None, alias: str | None, environ: Mapping[str, str] = os.environ) -> bool:
    """``--mlflow`` / ``--no-mlflow`` decide when given; otherwise log when a tracking URI is set or an alias is
    asked for."""
    if flag is not None:
        return flag
    return bool(environ.get(TRACKING_URI_ENV)) or alias is not None


def run_params(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The run's params: what was trained on what data and split. Hyperparameters keep their own names (as
    MLflow's autologging does), the split's fields get a ``split.`` prefix."""
    params: dict[str, Any] = dict(metadata.get("hyperparameters") or {})
    params.update({f"split.{k}": v for k, v in (metadata.get("split") or {}).items()})
    for key in ("algorithm", "framework", "data_fingerprint", "data_source"):
        if metadata.get(key) is not None:
            params[key] = metadata[key]
    return {k: str(v) for k, v in params.items()}


def run_metrics(metadata: Mapping[str, Any]) -> dict[str, float]:
    """The metadata's numeric metrics; undefined ones (``null``) are left out, MLflow has no missing value."""
    return {k: float(v) for k, v in (metadata.get("metrics") or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def log_training_run(artifact_dir: Path, *, tracking_uri: str | None = None, alias: str | None = None,
                     experiment: str | None = None) -> LoggedRun:
    """Log the version folder ``artifact_dir`` (``<model_dir>/<name>/vN``) as one MLflow run and register it as a
    new version of the registered model ``<name>``, moving ``alias`` (e.g. ``champion``) to it when given.

    ``tracking_uri`` defaults to MLflow's own resolution (``MLFLOW_TRACKING_URI``); the experiment to
    ``MLFLOW_EXPERIMENT_NAME``, else ``stream-scorer`` (created when missing, with the store's default artifact
    location)."""
    try:
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.exceptions import MlflowException
        from mlflow.tracking.artifact_utils import get_artifact_uri
    except ImportError as exc:
        raise MlflowLogError(f"MLflow is not installed ({exc}): {INSTALL_HINT}") from None

    if not (artifact_dir / METADATA_FILE).is_file():
        raise MlflowLogError(f"{artifact_dir}: no {METADATA_FILE}, not a version folder written by training")
    metadata = read_metadata(artifact_dir)
    name, version = str(metadata["name"]), str(metadata["version"])
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        experiment_id = _experiment_id(client, experiment or os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT)
        run = client.create_run(experiment_id, run_name=f"{name} {version}",
                                tags={"stream_scorer_model": name, VERSION_TAG: version})
        run_id = run.info.run_id
        try:
            now = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in run_metrics(metadata).items()],
                             params=[Param(k, v) for k, v in run_params(metadata).items()],
                             tags=[RunTag("artifact_dir", str(artifact_dir.resolve()))])
            client.log_artifacts(run_id, str(artifact_dir), artifact_path=ARTIFACT_PATH)
        except BaseException:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id)
        _ensure_registered_model(client, name)
        # The folder has no MLmodel file, so register its location directly (the client API takes any source).
        source = get_artifact_uri(run_id, ARTIFACT_PATH, tracking_uri=client.tracking_uri)
        model_version = client.create_model_version(name, source, run_id, tags={VERSION_TAG: version},
                                                    description=f"stream-scorer {name} {version}")
        if alias is not None:
            client.set_registered_model_alias(name, alias, model_version.version)
    except MlflowException as exc:
        raise MlflowLogError(f"MLflow logging of {artifact_dir} failed: {exc.message}") from exc
    except ImportError as exc:  # the store's own dependencies, e.g. SQLAlchemy for a SQLite store
        raise MlflowLogError(f"the MLflow store at {client.tracking_uri} needs {exc.name or exc}: "
                             f"{INSTALL_HINT}") from None
    except OSError as exc:  # e.g. an artifact location that cannot be written
        raise MlflowLogError(f"MLflow logging of {artifact_dir} failed: {exc}") from exc
    return LoggedRun(client.tracking_uri, experiment_id, run_id, name, str(model_version.version), alias)


def _experiment_id(client: Any, name: str) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except MlflowException:  # created by a concurrent run meanwhile
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def _ensure_registered_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            client.create_registered_model(name, description=f"stream-scorer {name} model versions")
        except MlflowException as exc2:
            if exc2.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
