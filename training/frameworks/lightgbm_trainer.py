"""LightGBM (``binary`` objective), early-stopped on the validation period's average precision."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from training.frameworks import ONNX_INPUT, ONNX_OPSET, THREADS, ArtifactFramework, FitData, float32_floor

MAX_ROUNDS = 800
EARLY_STOPPING_ROUNDS = 50


@dataclass(slots=True)
class LightGBMModel:
    booster: lgb.Booster
    framework: ArtifactFramework = "lightgbm"
    algorithm: str = "lightgbm"
    model_file: str = "model.txt"
    params: dict[str, Any] = field(default_factory=dict)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(x, num_threads=THREADS), dtype=np.float64)

    def save(self, path: Path) -> None:
        self.booster.save_model(str(path))

    def to_onnx(self, n_features: int) -> bytes:
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        model = convert_lightgbm(self.booster, initial_types=[(ONNX_INPUT, FloatTensorType([None, n_features]))],
                                 target_opset=ONNX_OPSET, zipmap=False)
        return model.SerializeToString()

    def raw_importance(self, data: FitData) -> dict[str, float]:
        gains = self.booster.feature_importance(importance_type="gain")
        return dict(zip(self.booster.feature_name(), (float(g) for g in gains), strict=True))


def _float32_thresholds(model: str) -> str:
    lines = []
    for line in model.splitlines():
        if line.startswith("threshold="):
            values = np.array(line.removeprefix("threshold=").split(), dtype=np.float64)
            line = "threshold=" + " ".join(repr(float(v)) for v in float32_floor(values))
        elif line.startswith("tree_sizes="):
            continue  # byte sizes of the tree blocks, no longer exact: LightGBM then parses sequentially
        lines.append(line)
    return "\n".join(lines) + "\n"


def train(data: FitData) -> LightGBMModel:
    params: dict[str, Any] = {
        "objective": "binary", "metric": "average_precision", "learning_rate": 0.05, "num_leaves": 31,
        "min_data_in_leaf": 40, "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
        "lambda_l2": 1.0, "scale_pos_weight": data.pos_weight, "num_threads": THREADS, "seed": data.seed,
        "deterministic": True, "force_col_wise": True, "verbose": -1,
    }
    names = list(data.feature_names)
    fit_set = lgb.Dataset(data.x_fit, data.y_fit, feature_name=names, free_raw_data=False)
    val_set = lgb.Dataset(data.x_val, data.y_val, feature_name=names, reference=fit_set, free_raw_data=False)
    booster = lgb.train(params, fit_set, num_boost_round=MAX_ROUNDS, valid_sets=[val_set],
                        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)])
    best = int(booster.best_iteration) or booster.current_iteration()
    # Rebuild from the text of the best iteration (model.txt, native scores and ONNX then hold the same trees),
    # with thresholds on float32 values so that ONNX Runtime's float32 comparisons take the same paths.
    booster = lgb.Booster(model_str=_float32_thresholds(booster.model_to_string(num_iteration=best)))
    return LightGBMModel(booster, params={**params, "num_boost_round": best})
