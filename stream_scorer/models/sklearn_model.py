from __future__ import annotations

from typing import Any

import joblib
import numpy as np

from stream_scorer.models.base import Model, ModelLoadError, ModelMetadata, model_file


class SklearnModel(Model):
    """A fitted scikit-learn classifier (or pipeline) with ``predict_proba``.

    Contributions: exact for a linear model (coefficient x standardised value); for other estimators the
    model-agnostic fallback is the score change when one feature is reset to its training default.
    """

    def __init__(self, metadata: ModelMetadata) -> None:
        super().__init__(metadata)
        path = model_file(metadata)
        try:
            self._model: Any = joblib.load(path)
        except Exception as exc:  # joblib raises whatever unpickling raised
            raise ModelLoadError(f"{path}: cannot be loaded by joblib ({type(exc).__name__}: {exc})") from None
        if not hasattr(self._model, "predict_proba"):
            raise ModelLoadError(f"{path}: {type(self._model).__name__} has no predict_proba")
        self._defaults = np.array([metadata.defaults.get(f, 0.0) for f in metadata.feature_names])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._model.predict_proba(x.astype(np.float32))[:, 1], dtype=np.float64)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        linear = _linear_parts(self._model)
        if linear is not None:
            scale, coef = linear
            return np.asarray(scale(x) * coef, dtype=np.float64)
        base = _logit(self.predict(x))
        out = np.empty_like(x, dtype=np.float64)
        for j in range(x.shape[1]):
            reset = x.copy()
            reset[:, j] = self._defaults[j]
            out[:, j] = base - _logit(self.predict(reset))
        return out


def _linear_parts(model: Any) -> tuple[Any, np.ndarray] | None:
    steps = getattr(model, "steps", None)
    final = steps[-1][1] if steps else model
    coef = getattr(final, "coef_", None)
    if coef is None:
        return None
    if steps and len(steps) > 1:
        pre = steps[:-1]

        def scale(x: np.ndarray) -> np.ndarray:
            for _, step in pre:
                x = step.transform(x)
            return x
    else:
        def scale(x: np.ndarray) -> np.ndarray:
            return x
    return scale, np.asarray(coef).ravel()


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))
