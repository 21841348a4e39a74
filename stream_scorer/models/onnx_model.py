from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort

from stream_scorer.models.base import Model, ModelLoadError, ModelMetadata, model_file
from stream_scorer.models.tree_paths import PathExplainer

log = logging.getLogger(__name__)

FUSED_TOLERANCE = 2e-5
"""Largest difference, on the probe rows, between the export's probability and the one derived from the
explainer's leaf sums for the explainer to serve both. Both sum float32 leaf values in tree order, the export
from the base margin and the explainer from zero: on the trained fraud model they were at most 4.7e-6 apart on
20,000 random rows (the export and XGBoost itself: 1.9e-7); a wrong link or model is off by far more."""


class OnnxModel(Model):
    """Scores with ONNX Runtime (fastest single-row path); contributions come from the native model.

    When the native model's path explainer (itself an ONNX Runtime session) reproduces this export's
    probabilities from its leaf sums, :meth:`score_and_explain` makes one call instead of two: the score is the
    logistic of the leaf sum plus the base margin that the probe rows give (:meth:`fuse`)."""

    def __init__(self, metadata: ModelMetadata, native: Model) -> None:
        super().__init__(metadata)
        path = model_file(metadata, "onnx_file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types per failure
            raise ModelLoadError(f"{path}: ONNX Runtime cannot load it ({exc})") from None
        self._input = self._session.get_inputs()[0].name
        outputs = self._session.get_outputs()
        self._prob_output = outputs[1].name if len(outputs) > 1 else outputs[0].name
        self._native = native
        self._fused: tuple[PathExplainer, float] | None = None

    @property
    def runtime(self) -> str:
        return "onnx"

    @property
    def fused(self) -> bool:
        return self._fused is not None

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = self._session.run([self._prob_output], {self._input: x.astype(np.float32, copy=False)})[0]
        if isinstance(out, list):  # zipmap output: list of {label: prob}
            return np.array([row[1] for row in out], dtype=np.float64)
        out = np.asarray(out, dtype=np.float64)
        return out[:, 1] if out.ndim == 2 and out.shape[1] == 2 else out.ravel()

    def contributions(self, x: np.ndarray) -> np.ndarray:
        return self._native.contributions(x)

    def score_and_explain(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._fused is None:
            return self.predict(x), self.contributions(x)
        explainer, base = self._fused
        margins, contributions = explainer.margins_and_contributions(x)
        return 1.0 / (1.0 + np.exp(-(margins + base))), contributions

    def fuse(self, probe: np.ndarray) -> bool:
        """Serve scores from the path explainer if, on ``probe`` rows, its leaf sums plus one base margin give
        this export's probabilities within :data:`FUSED_TOLERANCE` (a logistic link, as XGBoost's and LightGBM's
        binary objectives have); otherwise keep two calls. Returns whether it fused."""
        explainer = getattr(self._native, "path_explainer", None)
        if not isinstance(explainer, PathExplainer):
            return False
        expected = self.predict(probe)
        margins, _ = explainer.margins_and_contributions(probe)
        inside = (expected > 1e-6) & (expected < 1 - 1e-6)
        if not inside.any():
            return False
        base = float(np.median(np.log(expected[inside] / (1 - expected[inside])) - margins[inside]))
        diff = float(np.max(np.abs(1.0 / (1.0 + np.exp(-(margins + base))) - expected)))
        if not diff <= FUSED_TOLERANCE:
            log.info("scores and explanations kept as two calls: the leaf sums do not give the export's "
                     "probabilities", extra={"model": self.name, "version": self.version, "difference": diff})
            return False
        self._fused = (explainer, base)
        return True
