from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort

from stream_scorer.models.base import Model, ModelLoadError, ModelMetadata, model_file
from stream_scorer.models.tree_paths import PathExplainer

log = logging.getLogger(__name__)

FUSED_TOLERANCE = 1e-4
"""Largest difference in log-odds, on the probe rows, between the native model's raw score and the explainer's
leaf sum plus one base margin for the explainer to serve both (with the logistic link checked too, served
probabilities are then within 2.5e-5 of the native model's, which the export matches within 1e-4). Both sum
float32 leaf values in tree order, XGBoost from its base margin and the explainer from zero: on the trained fraud
model the probabilities were at most 9e-8 apart from the export's on 20,000 random rows (the export and XGBoost
itself: 1.9e-7); a wrong link or model is off by far more."""
LINK_TOLERANCE = 1e-6
"""The native model's probabilities must be the logistic of its raw scores within this (float32 rounding)."""


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
        return _logistic(margins + base), contributions

    def fuse(self, probe: np.ndarray) -> bool:
        """Serve scores from the path explainer if, on ``probe`` rows, the native model's probabilities are the
        logistic of its raw scores (XGBoost's and LightGBM's binary objectives) and the explainer's leaf sums
        plus one base margin give those raw scores within :data:`FUSED_TOLERANCE`; otherwise keep two calls.
        Returns whether it fused. (The native model, not this export: the export's float32 logistic loses the
        log-odds of small probabilities, ``1 - 0.9998`` in float32.)"""
        explainer = getattr(self._native, "path_explainer", None)
        raw = getattr(self._native, "margins", None)
        if not isinstance(explainer, PathExplainer) or raw is None:
            return False
        native = np.asarray(raw(probe), dtype=np.float64)
        link = float(np.max(np.abs(_logistic(native) - self._native.predict(probe))))
        sums, _ = explainer.margins_and_contributions(probe)
        base = float(np.median(native - sums))
        diff = float(np.max(np.abs(sums + base - native)))
        extra = {"model": self.name, "version": self.version, "difference": diff, "link_difference": link}
        if not (diff <= FUSED_TOLERANCE and link <= LINK_TOLERANCE):
            log.info("scores and explanations kept as two model calls: the explainer's leaf sums do not give the "
                     "model's scores on the probe rows", extra=extra)
            return False
        self._fused = (explainer, base)
        log.info("scores and explanations from one model call", extra=extra)
        return True


def _logistic(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # a margin below -709: exp overflows to inf and the score is 0, as it should
        return 1.0 / (1.0 + np.exp(-z))
