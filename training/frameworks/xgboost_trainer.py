"""XGBoost (``binary:logistic``, hist trees), early-stopped on the validation period's average precision."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from training.frameworks import ONNX_INPUT, ONNX_OPSET, THREADS, ArtifactFramework, FitData

MAX_ROUNDS = 600
EARLY_STOPPING_ROUNDS = 40


@dataclass(slots=True)
class XGBoostModel:
    booster: xgb.Booster
    framework: ArtifactFramework = "xgboost"
    algorithm: str = "xgboost"
    model_file: str = "model.json"
    params: dict[str, Any] = field(default_factory=dict)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(x), dtype=np.float64)

    def save(self, path: Path) -> None:
        self.booster.save_model(str(path))

    def to_onnx(self, n_features: int) -> bytes:
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        # onnxmltools reads split features as 'f<index>': convert a copy without our feature names.
        unnamed = self.booster.copy()
        unnamed.feature_names = None
        unnamed.feature_types = None
        model = convert_xgboost(unnamed, initial_types=[(ONNX_INPUT, FloatTensorType([None, n_features]))],
                                target_opset=ONNX_OPSET)
        return model.SerializeToString()

    def raw_importance(self, data: FitData) -> dict[str, float]:
        scores = self.booster.get_score(importance_type="total_gain")
        return {name: float(v if isinstance(v, float | int) else sum(v)) for name, v in scores.items()}


def train(data: FitData) -> XGBoostModel:
    params: dict[str, Any] = {
        "objective": "binary:logistic", "eval_metric": "aucpr", "tree_method": "hist", "max_depth": 6,
        "eta": 0.08, "subsample": 0.8, "colsample_bytree": 0.8, "min_child_weight": 2.0, "lambda": 1.0,
        "scale_pos_weight": data.pos_weight, "nthread": THREADS, "seed": data.seed,
    }
    names = list(data.feature_names)
    dfit = xgb.DMatrix(data.x_fit, label=data.y_fit, feature_names=names)
    dval = xgb.DMatrix(data.x_val, label=data.y_val, feature_names=names)
    booster = xgb.train(params, dfit, num_boost_round=MAX_ROUNDS, evals=[(dval, "validation")],
                        early_stopping_rounds=EARLY_STOPPING_ROUNDS, verbose_eval=False)
    best = int(booster.best_iteration)
    # Keep only the trees up to the best iteration, so every consumer of model.json scores the same way.
    booster = booster[: best + 1]
    return XGBoostModel(booster, params={**params, "num_boost_round": best + 1})
