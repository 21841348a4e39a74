from __future__ import annotations

import numpy as np
import onnxruntime as ort

from stream_scorer.models.base import Model, ModelLoadError, ModelMetadata, model_file


class OnnxModel(Model):
    """Scores with ONNX Runtime (fastest single-row path); contributions come from the native model."""

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

    @property
    def runtime(self) -> str:
        return "onnx"

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = self._session.run([self._prob_output], {self._input: x.astype(np.float32, copy=False)})[0]
        if isinstance(out, list):  # zipmap output: list of {label: prob}
            return np.array([row[1] for row in out], dtype=np.float64)
        out = np.asarray(out, dtype=np.float64)
        return out[:, 1] if out.ndim == 2 and out.shape[1] == 2 else out.ravel()

    def contributions(self, x: np.ndarray) -> np.ndarray:
        return self._native.contributions(x)
