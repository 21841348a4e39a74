from __future__ import annotations

import lightgbm as lgb
import numpy as np

from stream_scorer.models.base import ExplainMethod, Model, ModelLoadError, ModelMetadata, model_file
from stream_scorer.models.tree_paths import PathExplainer, from_lightgbm


class LightGBMModel(Model):
    """Contributions: path attribution through ONNX Runtime by default, or exact TreeSHAP (``pred_contrib``)."""

    def __init__(self, metadata: ModelMetadata, explain_method: ExplainMethod = "path") -> None:
        super().__init__(metadata)
        path = model_file(metadata)
        try:
            self._booster = lgb.Booster(model_file=str(path))
        except lgb.basic.LightGBMError as exc:
            raise ModelLoadError(f"{path}: not a LightGBM model ({exc})") from None
        n = self._booster.num_feature()
        if n != len(metadata.feature_names):
            raise ModelLoadError(f"{path}: model has {n} features, metadata lists {len(metadata.feature_names)}")
        self._explainer = PathExplainer(from_lightgbm(self._booster.dump_model(), n)) \
            if explain_method == "path" else None

    def predict(self, x: np.ndarray) -> np.ndarray:
        # trained on float32 features (metadata ``input_dtype``): the same values the ONNX export sees
        return np.asarray(self._booster.predict(x.astype(np.float32), num_threads=1), dtype=np.float64)

    @property
    def path_explainer(self) -> PathExplainer | None:
        """The path-attribution explainer (``EXPLAIN_METHOD=path``), which also sums each row's leaf values."""
        return self._explainer

    def margins(self, x: np.ndarray) -> np.ndarray:
        """The raw scores whose logistic ``predict`` returns (binary objective)."""
        return np.asarray(self._booster.predict(x.astype(np.float32), raw_score=True, num_threads=1),
                          dtype=np.float64)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        if self._explainer is not None:
            return self._explainer.contributions(x)
        contribs = np.asarray(self._booster.predict(x, pred_contrib=True, num_threads=1), dtype=np.float64)
        return contribs[:, :-1]
