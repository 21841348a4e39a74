"""The one model interface; one file per framework implements it and imports its framework itself."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

Framework = Literal["xgboost", "lightgbm", "sklearn", "onnx"]
ExplainMethod = Literal["path", "treeshap"]
"""``path``: decision-path attribution (fast, see ``tree_paths``); ``treeshap``: the framework's exact TreeSHAP."""


class ModelLoadError(RuntimeError):
    """An artifact that cannot be served; the message says which file and why."""


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    version: str
    framework: Framework
    feature_names: tuple[str, ...]
    thresholds: dict[str, float]
    defaults: dict[str, float]
    metrics: dict[str, Any]
    path: Path
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def read(cls, folder: Path) -> ModelMetadata:
        meta_path = folder / "metadata.json"
        try:
            raw = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise ModelLoadError(f"{meta_path}: missing") from None
        except json.JSONDecodeError as exc:
            raise ModelLoadError(f"{meta_path}: not valid JSON ({exc})") from None
        try:
            return cls(
                name=str(raw["name"]), version=str(raw["version"]), framework=raw["framework"],
                feature_names=tuple(raw["feature_names"]), thresholds=dict(raw.get("thresholds", {})),
                defaults=dict(raw.get("defaults", {})), metrics=dict(raw.get("metrics", {})), path=folder, raw=raw,
            )
        except KeyError as exc:
            raise ModelLoadError(f"{meta_path}: missing key {exc}") from None


class Model(ABC):
    """A loaded model. ``predict`` returns P(class 1) per row of a 2-D float matrix in ``feature_names`` order."""

    def __init__(self, metadata: ModelMetadata) -> None:
        self.metadata = metadata
        self.loaded_at = datetime.now(UTC)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def runtime(self) -> str:
        return self.metadata.framework

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per-row, per-feature contributions to the score (log-odds for trees), shape ``(rows, features)``."""

    def score_and_explain(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``predict`` and ``contributions`` of the same rows; a model that gets both from one call overrides it."""
        return self.predict(x), self.contributions(x)

    def unload(self) -> None:  # noqa: B027 - optional hook
        """Release native resources; the default has none."""

    def describe(self) -> dict[str, Any]:
        m = self.metadata
        return {
            "name": m.name, "version": m.version, "framework": m.framework, "runtime": self.runtime,
            "feature_names": list(m.feature_names), "thresholds": m.thresholds, "metrics": m.metrics,
            "loaded_at": self.loaded_at.isoformat(), "created_at": m.raw.get("created_at"),
        }


def model_file(metadata: ModelMetadata, key: str = "model_file") -> Path:
    name = metadata.raw.get(key)
    if not name:
        raise ModelLoadError(f"{metadata.path / 'metadata.json'}: missing key '{key}'")
    path = metadata.path / str(name)
    if not path.is_file():
        raise ModelLoadError(f"{path}: missing")
    return path
