"""One small module per framework; each imports its framework inside itself only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

ArtifactFramework = Literal["xgboost", "lightgbm", "sklearn"]
ONNX_INPUT = "input"
"""Name of the ONNX graph's input: float32 ``[n, n_features]`` in the metadata's feature order."""
ONNX_PROBABILITIES = "probabilities"
"""Name of the ONNX output holding ``[n, 2]`` class probabilities (column 1: positive class)."""
ONNX_OPSET = 15
"""The highest opset onnxmltools 1.16 converts to; skl2onnx uses the same for consistency."""
THREADS = 2


@dataclass(frozen=True, slots=True)
class FitData:
    """Features as float32 (what ONNX Runtime sees, so native and ONNX scores agree) and 0/1 labels."""

    x_fit: np.ndarray
    y_fit: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    feature_names: tuple[str, ...]
    pos_weight: float = 1.0
    """Weight of a positive example relative to a negative one (class imbalance)."""
    seed: int = 7


class FittedModel(Protocol):
    """What every framework module's ``train`` returns."""

    framework: ArtifactFramework
    algorithm: str
    model_file: str
    params: dict[str, Any]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probability of class 1 for each row (float64)."""
        ...

    def save(self, path: Path) -> None:
        """Write the native model file."""
        ...

    def to_onnx(self, n_features: int) -> bytes:
        """The serialized ONNX model (input ``ONNX_INPUT``, output ``ONNX_PROBABILITIES``)."""
        ...

    def raw_importance(self, data: FitData) -> dict[str, float]:
        """Unnormalized importance per feature name."""
        ...


def float32_floor(thresholds: np.ndarray) -> np.ndarray:
    """The largest float32 value <= each threshold, as float64.

    For any float32 input ``x``, ``x <= t`` and ``x <= float32_floor(t)`` agree, and ONNX Runtime compares in
    float32: rewriting a tree model's double thresholds this way leaves its native scores on float32 features
    unchanged while making the ONNX export take exactly the same paths (otherwise a value lying between a
    threshold and its float32 rounding goes the other way in ONNX, off by a whole leaf).
    """
    t = np.asarray(thresholds, dtype=np.float64)
    t32 = t.astype(np.float32)
    above = t32.astype(np.float64) > t
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32.astype(np.float64)


def normalized_importance(model: FittedModel, data: FitData) -> dict[str, float]:
    """Importance per feature (gain for trees, |coefficient| or permutation otherwise), summing to 1."""
    raw = model.raw_importance(data)
    total = sum(max(v, 0.0) for v in raw.values()) or 1.0
    return {name: max(float(raw.get(name, 0.0)), 0.0) / total for name in data.feature_names}
