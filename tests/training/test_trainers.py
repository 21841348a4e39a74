from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import joblib
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from stream_scorer.core.features import FRAUD_FEATURE_NAMES
from training.export import OnnxParityError, export_onnx, onnx_scores
from training.frameworks import FitData, FittedModel, normalized_importance
from training.trainers import FRAMEWORKS, positive_weight, train_model


@pytest.fixture(scope="module")
def fit_data(small_fraud_features: pd.DataFrame) -> FitData:
    frame = small_fraud_features
    x = frame[list(FRAUD_FEATURE_NAMES)].to_numpy(dtype=np.float32)
    y = frame["label"].to_numpy(dtype=np.int8)
    cut = int(len(frame) * 0.7)
    return FitData(x[:cut], y[:cut], x[cut:], y[cut:], FRAUD_FEATURE_NAMES, positive_weight(y[:cut], "sqrt"), 3)


def _reload(framework: str, path: Path, x: np.ndarray) -> np.ndarray:
    if framework == "xgboost":
        booster = xgb.Booster()
        booster.load_model(str(path))
        return np.asarray(booster.inplace_predict(x), dtype=np.float64)
    if framework == "lightgbm":
        return np.asarray(lgb.Booster(model_file=str(path)).predict(x), dtype=np.float64)
    return np.asarray(joblib.load(path).predict_proba(x.astype(np.float64))[:, 1], dtype=np.float64)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_each_framework_trains_saves_and_exports_onnx_with_parity(framework: str, fit_data: FitData,
                                                                  tmp_path: Path) -> None:
    model = train_model(framework, fit_data)
    scores = model.predict(fit_data.x_val)
    assert scores.shape == (len(fit_data.y_val),)
    assert ((scores >= 0) & (scores <= 1)).all()
    # Better than chance on held-out rows.
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(fit_data.y_val, scores) > 0.7
    path = tmp_path / model.model_file
    model.save(path)
    np.testing.assert_allclose(_reload(model.framework, path, fit_data.x_val), scores, rtol=0, atol=1e-9)
    export = export_onnx(model, fit_data.x_val)
    assert export.max_abs_diff <= 1e-5
    assert export.rows_checked == len(fit_data.y_val)
    np.testing.assert_allclose(onnx_scores(export.model, fit_data.x_val), scores, rtol=0, atol=1e-5)
    importance = normalized_importance(model, fit_data)
    assert set(importance) == set(FRAUD_FEATURE_NAMES)
    assert sum(importance.values()) == pytest.approx(1.0)


@dataclass
class _Skewed:
    """A model whose native scores drift from its ONNX export (to prove the check fails loudly)."""

    inner: FittedModel
    framework: str = "xgboost"
    algorithm: str = "skewed"
    model_file: str = "model.json"

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.inner.predict(x) * 0.999

    def to_onnx(self, n_features: int) -> bytes:
        return self.inner.to_onnx(n_features)


def test_onnx_parity_failure_is_loud(fit_data: FitData) -> None:
    model = train_model("xgboost", fit_data)
    with pytest.raises(OnnxParityError, match=r"differs from the native model by .* at row \d+"):
        export_onnx(_Skewed(model), fit_data.x_val)  # type: ignore[arg-type]


def test_positive_weight_policies() -> None:
    y = np.array([0] * 99 + [1])
    assert positive_weight(y, "none") == 1.0
    assert positive_weight(y, "balanced") == 99.0
    assert positive_weight(y, "sqrt") == pytest.approx(99**0.5)


def test_unknown_framework_and_single_class_periods_are_rejected(fit_data: FitData) -> None:
    with pytest.raises(ValueError, match="unknown framework"):
        train_model("catboost", fit_data)
    one_class = FitData(fit_data.x_fit, np.zeros_like(fit_data.y_fit), fit_data.x_val, fit_data.y_val,
                        fit_data.feature_names)
    with pytest.raises(ValueError, match="fit period needs both classes"):
        train_model("xgboost", one_class)
