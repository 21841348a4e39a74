"""Versions under ``MODEL_DIR/<name>/<version>/``; the serving reference per model name."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from stream_scorer.errors import ModelNotLoaded
from stream_scorer.models.base import ExplainMethod, Model, ModelLoadError
from stream_scorer.models.loader import load_model

_VERSION = re.compile(r"^v(\d+)$")


def list_versions(model_dir: Path, name: str) -> list[str]:
    """Versions of a model, oldest first (``v2`` before ``v10``)."""
    folder = model_dir / name
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p.name) for p in folder.iterdir() if p.is_dir() and (m := _VERSION.match(p.name))]
    return [name for _, name in sorted(found)]


class ModelRegistry:
    def __init__(self, model_dir: Path, *, use_onnx: bool = False, explain_method: ExplainMethod = "path") -> None:
        self._model_dir = model_dir
        self._use_onnx = use_onnx
        self._explain_method = explain_method
        self._models: dict[str, Model] = {}

    def load_latest(self, name: str, expected_features: Sequence[str]) -> Model:
        versions = list_versions(self._model_dir, name)
        if not versions:
            raise ModelLoadError(f"{self._model_dir / name}: no model versions (run `stream-scorer train {name}`)")
        return self.load(name, versions[-1], expected_features)

    def load(self, name: str, version: str, expected_features: Sequence[str]) -> Model:
        """Load a version next to the serving one, then flip the reference (the old one keeps serving on error)."""
        model = load_model(self._model_dir / name / version, expected_features=expected_features,
                           use_onnx=self._use_onnx, explain_method=self._explain_method)
        old = self._models.get(name)
        self._models[name] = model
        if old is not None and old is not model:
            old.unload()
        return model

    def get(self, name: str) -> Model:
        model = self._models.get(name)
        if model is None:
            raise ModelNotLoaded(f"model '{name}' is not loaded")
        return model

    def loaded(self) -> dict[str, Model]:
        return dict(self._models)
