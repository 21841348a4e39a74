"""Fetch a model version from an MLflow model registry (the optional ``mlflow`` extra) into a local cache.

The registered version's artifacts are one of our version folders, logged as-is by ``training.mlflow_log``; the
folder returned here goes to ``load_model`` like any other. mlflow is imported inside the function only.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from stream_scorer.models.base import ModelLoadError

log = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
INSTALL_HINT = "pip install 'stream-scorer[mlflow]'"
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<ref>[^/@]+)|@(?P<alias>[^/@]+))/?$")


def parse_models_uri(uri: str) -> tuple[str, str]:
    """``models:/<name>/<alias>``, ``models:/<name>/<number>`` or MLflow's ``models:/<name>@<alias>`` ->
    ``(name, alias or number)``."""
    match = _MODELS_URI.match(uri.strip())
    if match is None:
        raise ModelLoadError(f"{uri!r}: not a model registry URI (expected models:/<name>/<alias> or "
                             "models:/<name>/<version number>)")
    return match["name"], match["ref"] or match["alias"]


def fetch_mlflow_model(uri: str, cache_dir: Path, tracking_uri: str | None = None) -> Path:
    """Resolve ``uri`` (``models:/<name>/<alias>`` or ``models:/<name>/<number>``) to a registered version and
    return a local folder with its artifacts (the one holding ``metadata.json``), for ``load_model``.

    The folder is ``cache_dir/<name>/<MLflow version number>/``: reused when already there (a registered version's
    files never change), else downloaded to a hidden staging folder beside it and renamed into place, so a half
    download is never used. One ``cache_dir`` serves one registry. ``tracking_uri`` defaults to MLflow's own
    resolution (``MLFLOW_TRACKING_URI``); the registry is the tracking store unless ``MLFLOW_REGISTRY_URI`` says
    otherwise. Raises :class:`ModelLoadError` with the reason."""
    name, ref = parse_models_uri(uri)
    try:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
    except ImportError as exc:
        raise ModelLoadError(f"{uri}: MLflow is not installed ({exc}): {INSTALL_HINT}") from None

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        number = _resolve_version(client, uri, name, ref)
        target = cache_dir / name / number
        if (target / METADATA_FILE).is_file():
            return target
        source = client.get_model_version_download_uri(name, number)
    except MlflowException as exc:
        raise ModelLoadError(f"{uri}: MLflow registry at {client.tracking_uri}: {exc.message}") from None
    except ImportError as exc:  # the store's own dependencies, e.g. SQLAlchemy for a SQLite store
        raise ModelLoadError(f"{uri}: the MLflow store at {client.tracking_uri} needs {exc.name or exc}: "
                             f"{INSTALL_HINT}") from None
    _download(uri, source, target, client.tracking_uri)
    log.info("fetched registered model", extra={"uri": uri, "mlflow_version": number, "path": str(target)})
    return target


def resolve_mlflow_version(uri: str, tracking_uri: str | None = None) -> str:
    """The registered version number ``uri`` names now (an alias is looked up; a number is returned as is).
    Raises :class:`ModelLoadError` when the registry cannot answer."""
    name, ref = parse_models_uri(uri)
    if ref.isdigit():
        return ref
    try:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
    except ImportError as exc:
        raise ModelLoadError(f"{uri}: MLflow is not installed ({exc}): {INSTALL_HINT}") from None
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        return _resolve_version(client, uri, name, ref)
    except MlflowException as exc:
        raise ModelLoadError(f"{uri}: MLflow registry at {client.tracking_uri}: {exc.message}") from None
    except ImportError as exc:
        raise ModelLoadError(f"{uri}: the MLflow store at {client.tracking_uri} needs {exc.name or exc}") from None


def _resolve_version(client: Any, uri: str, name: str, ref: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ModelLoadError(f"{uri}: no registered model {name!r} in the MLflow registry") from None
        raise
    if ref.isdigit():
        try:
            return str(client.get_model_version(name, ref).version)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise ModelLoadError(f"{uri}: registered model {name!r} has no version {ref}") from None
            raise
    aliases: dict[str, Any] = dict(registered.aliases or {})
    if ref not in aliases:
        known = ", ".join(sorted(aliases)) or "none"
        raise ModelLoadError(f"{uri}: registered model {name!r} has no alias {ref!r} (aliases: {known})")
    return str(client.get_model_version_by_alias(name, ref).version)


def _download(uri: str, source: str, target: Path, tracking_uri: str) -> None:
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".download-{target.name}-", dir=target.parent))
    try:
        try:
            local = Path(download_artifacts(artifact_uri=source, dst_path=str(staging), tracking_uri=tracking_uri))
        except (MlflowException, OSError) as exc:
            raise ModelLoadError(f"{uri}: downloading the artifacts from {source} failed: {exc}") from None
        folder = _metadata_folder(local)
        if folder is None:
            raise ModelLoadError(f"{uri}: no {METADATA_FILE} in the registered artifacts at {source} (not a "
                                 "stream-scorer artifact folder; log it with `stream-scorer train ... --mlflow`)")
        if target.exists() and not (target / METADATA_FILE).is_file():
            shutil.rmtree(target)  # left by something else than this function, which only renames complete folders
        try:
            folder.rename(target)
        except OSError:
            if not (target / METADATA_FILE).is_file():  # a concurrent fetch of the same version got there first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _metadata_folder(local: Path) -> Path | None:
    """The downloaded folder itself, or the one folder below it that holds the metadata."""
    if (local / METADATA_FILE).is_file():
        return local
    found = [p.parent for p in local.rglob(METADATA_FILE)]
    return found[0] if len(found) == 1 else None
