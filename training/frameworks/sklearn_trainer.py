"""scikit-learn: scaled logistic regression (the baseline) and HistGradientBoosting, saved with joblib."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from training.frameworks import ONNX_INPUT, ONNX_OPSET, THREADS, ArtifactFramework, FitData, float32_floor

PERMUTATION_ROWS = 10_000


@dataclass(slots=True)
class SklearnModel:
    estimator: Any
    algorithm: str
    framework: ArtifactFramework = "sklearn"
    model_file: str = "model.joblib"
    params: dict[str, Any] = field(default_factory=dict)

    def predict(self, x: np.ndarray) -> np.ndarray:
        with threadpool_limits(THREADS):
            return np.asarray(self.estimator.predict_proba(x.astype(np.float64))[:, 1], dtype=np.float64)

    def save(self, path: Path) -> None:
        joblib.dump(self.estimator, path)

    def to_onnx(self, n_features: int) -> bytes:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType

        with _tree_attributes_as_ints():
            model = to_onnx(self.estimator, initial_types=[(ONNX_INPUT, FloatTensorType([None, n_features]))],
                            options={"zipmap": False}, target_opset=ONNX_OPSET)
        return model.SerializeToString()

    def raw_importance(self, data: FitData) -> dict[str, float]:
        if isinstance(self.estimator, Pipeline):
            coef = np.abs(self.estimator.named_steps["model"].coef_[0])
            return dict(zip(data.feature_names, coef.tolist(), strict=True))
        rows = np.random.default_rng(data.seed).permutation(len(data.y_val))[:PERMUTATION_ROWS]
        with threadpool_limits(THREADS):
            result = permutation_importance(self.estimator, data.x_val[rows].astype(np.float64), data.y_val[rows],
                                            scoring="average_precision", n_repeats=2, random_state=data.seed)
        return dict(zip(data.feature_names, result.importances_mean.tolist(), strict=True))


def train_logreg(data: FitData) -> SklearnModel:
    """Standardized features, L2 logistic regression, positive class weighted by ``pos_weight``."""
    params: dict[str, Any] = {"C": 1.0, "max_iter": 2_000, "class_weight": {0: 1.0, 1: data.pos_weight}}
    estimator = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(**params))])
    with threadpool_limits(THREADS):
        estimator.fit(data.x_fit.astype(np.float64), data.y_fit)
    return SklearnModel(estimator, "sklearn-logreg", params={**params, "class_weight": str(params["class_weight"])})


def train_hgb(data: FitData) -> SklearnModel:
    """HistGradientBoosting early-stopped on the validation period (its loss)."""
    params: dict[str, Any] = {
        "learning_rate": 0.08, "max_iter": 500, "max_leaf_nodes": 31, "min_samples_leaf": 40,
        "l2_regularization": 1.0, "early_stopping": True, "n_iter_no_change": 30, "scoring": "loss",
        "class_weight": {0: 1.0, 1: data.pos_weight}, "random_state": data.seed,
    }
    estimator = HistGradientBoostingClassifier(**params)
    with threadpool_limits(THREADS):
        estimator.fit(data.x_fit.astype(np.float64), data.y_fit, X_val=data.x_val.astype(np.float64),
                      y_val=data.y_val)
    # Thresholds on float32 values: same scores on float32 features, identical paths in the ONNX export.
    for trees in estimator._predictors:
        for tree in trees:
            tree.nodes["num_threshold"] = float32_floor(tree.nodes["num_threshold"])
    return SklearnModel(estimator, "sklearn-hgb", params={**params, "class_weight": str(params["class_weight"]),
                                                          "n_iter": int(estimator.n_iter_)})


@contextmanager
def _tree_attributes_as_ints() -> Iterator[None]:
    """skl2onnx 1.20 passes Python/NumPy booleans for ``nodes_missing_value_tracks_true`` of HistGradientBoosting
    trees, which onnx >= 1.18's ``make_attribute`` rejects ("Expected an int, got a boolean"); cast them."""
    import skl2onnx.common.tree_ensemble as tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kwargs: Any) -> Any:
        return original(*args, nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true), **kwargs)

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original
