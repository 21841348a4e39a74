from __future__ import annotations

import numpy as np
import xgboost as xgb

from stream_scorer.models.base import ExplainMethod, Model, ModelLoadError, ModelMetadata, model_file
from stream_scorer.models.tree_paths import PathExplainer, from_xgboost


class XGBoostModel(Model):
    """Scores with ``inplace_predict`` (no DMatrix). Contributions: path attribution through ONNX Runtime by
    default (tens of microseconds), or exact TreeSHAP (``pred_contribs``, one DMatrix per call, milliseconds)."""

    def __init__(self, metadata: ModelMetadata, explain_method: ExplainMethod = "path") -> None:
        super().__init__(metadata)
        path = model_file(metadata)
        try:
            self._booster = xgb.Booster(model_file=str(path))
        except xgb.core.XGBoostError as exc:
            raise ModelLoadError(f"{path}: not an XGBoost model ({str(exc).splitlines()[0]})") from None
        self._booster.set_param({"nthread": 1})
        n = self._booster.num_features()
        if n != len(metadata.feature_names):
            raise ModelLoadError(f"{path}: model has {n} features, metadata lists {len(metadata.feature_names)}")
        self._explainer = PathExplainer(from_xgboost(self._booster.save_raw("json"), n)) \
            if explain_method == "path" else None

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._booster.inplace_predict(x, validate_features=False), dtype=np.float64)

    @property
    def path_explainer(self) -> PathExplainer | None:
        """The path-attribution explainer (``EXPLAIN_METHOD=path``), which also sums each row's leaf values."""
        return self._explainer

    def margins(self, x: np.ndarray) -> np.ndarray:
        """The raw scores (log-odds) whose logistic ``predict`` returns."""
        return np.asarray(self._booster.inplace_predict(x, predict_type="margin", validate_features=False),
                          dtype=np.float64)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        if self._explainer is not None:
            return self._explainer.contributions(x)
        contribs = self._booster.predict(xgb.DMatrix(x), pred_contribs=True, validate_features=False)
        return np.asarray(contribs[:, :-1], dtype=np.float64)  # last column is the bias
