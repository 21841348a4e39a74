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
    _smoke_test(model, folder)
    return model


def _native(metadata: ModelMetadata, explain_method: ExplainMethod) -> Model:
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


def _smoke_test(model: Model, folder: Path) -> None:
    row = np.array([[model.metadata.defaults.get(f, 0.0) for f in model.metadata.feature_names]])
    score = model.predict(row)
    if score.shape != (1,) or not 0.0 <= float(score[0]) <= 1.0:
        raise ModelLoadError(f"{folder}: model does not return one probability per row (got {score!r})")
