from __future__ import annotations

import lightgbm as lgb
import numpy as np

from stream_scorer.models.base import Model, ModelLoadError, ModelMetadata, model_file


class LightGBMModel(Model):
    def __init__(self, metadata: ModelMetadata) -> None:
        super().__init__(metadata)
        path = model_file(metadata)
        try:
            self._booster = lgb.Booster(model_file=str(path))
        except lgb.basic.LightGBMError as exc:
            raise ModelLoadError(f"{path}: not a LightGBM model ({exc})") from None
        n = self._booster.num_feature()
        if n != len(metadata.feature_names):
            raise ModelLoadError(f"{path}: model has {n} features, metadata lists {len(metadata.feature_names)}")

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._booster.predict(x, num_threads=1), dtype=np.float64)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        contribs = np.asarray(self._booster.predict(x, pred_contrib=True, num_threads=1), dtype=np.float64)
        return contribs[:, :-1]
