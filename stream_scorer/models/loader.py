"""Load one artifact folder into a :class:`Model`, checking its metadata against the feature definitions."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stream_scorer.models.base import ExplainMethod, Model, ModelLoadError, ModelMetadata

log = logging.getLogger(__name__)


def load_model(folder: Path, *, expected_features: Sequence[str], use_onnx: bool = False,
               explain_method: ExplainMethod = "path") -> Model:
    metadata = ModelMetadata.read(folder)
    if tuple(expected_features) != metadata.feature_names:
        expected, got = list(expected_features), list(metadata.feature_names)
        diff = sorted(set(expected) ^ set(got)) or "same names, different order"
        raise ModelLoadError(f"{folder}: feature names do not match the feature definitions ({diff})")
    native = _native(metadata, explain_method)
    model = native
    if use_onnx and not metadata.raw.get("onnx_file"):
        log.warning("no ONNX export in the artifact, scoring with the native model", extra={"path": str(folder)})
    elif use_onnx:
        from stream_scorer.models.onnx_model import OnnxModel

        model = OnnxModel(metadata, native)
        _check_parity(model, native, folder)
        model.fuse(probe_rows(metadata))
    _smoke_test(model, folder)
    return model


def _native(metadata: ModelMetadata, explain_method: ExplainMethod) -> Model:
    try:
        return _native_of(metadata, explain_method)
    except ImportError as exc:
        raise ModelLoadError(f"{metadata.path}: framework {metadata.framework!r} is not installed ({exc})") from None


def _native_of(metadata: ModelMetadata, explain_method: ExplainMethod) -> Model:
    if metadata.framework == "xgboost":
        from stream_scorer.models.xgboost_model import XGBoostModel

        return XGBoostModel(metadata, explain_method)
    if metadata.framework == "lightgbm":
        from stream_scorer.models.lightgbm_model import LightGBMModel

        return LightGBMModel(metadata, explain_method)
    if metadata.framework == "sklearn":
        from stream_scorer.models.sklearn_model import SklearnModel

        return SklearnModel(metadata)
    raise ModelLoadError(f"{metadata.path}: unknown framework {metadata.framework!r}")


ONNX_TOLERANCE = 1e-4
"""Training checks the export within 1e-5 on its whole test set; loading re-checks on probe rows with a margin
for float32 rounding, so a swapped or stale ``.onnx`` file is refused instead of scoring differently."""


def probe_rows(metadata: ModelMetadata) -> np.ndarray:
    """The defaults row plus one row per training decile of every feature (from ``feature_baseline``)."""
    names = metadata.feature_names
    rows = [[metadata.defaults.get(f, 0.0) for f in names]]
    baseline = metadata.raw.get("feature_baseline") or {}
    for k in range(9):
        row = []
        for j, f in enumerate(names):
            edges = (baseline.get(f) or {}).get("quantile_edges") or []
            row.append(float(edges[min(k, len(edges) - 1)]) if edges else rows[0][j] * (1 + k / 4))
        rows.append(row)
    return np.array(rows, dtype=np.float64)


def _check_parity(onnx: Model, native: Model, folder: Path) -> None:
    x = probe_rows(onnx.metadata)
    diff = float(np.max(np.abs(onnx.predict(x) - native.predict(x))))
    if not diff <= ONNX_TOLERANCE:
        raise ModelLoadError(f"{folder}: the ONNX export disagrees with the native model (max difference "
                             f"{diff:.2e} > {ONNX_TOLERANCE:.0e} on probe rows); re-export it")


def _smoke_test(model: Model, folder: Path) -> None:
    row = np.array([[model.metadata.defaults.get(f, 0.0) for f in model.metadata.feature_names]])
    score = model.predict(row)
    if score.shape != (1,) or not 0.0 <= float(score[0]) <= 1.0:
        raise ModelLoadError(f"{folder}: model does not return one probability per row (got {score!r})")
