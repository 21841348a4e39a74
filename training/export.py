"""ONNX export with a parity check against the native model (failing loudly)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from training.frameworks import ONNX_INPUT, ONNX_PROBABILITIES, FittedModel

PARITY_TOLERANCE = 1e-5


class OnnxParityError(RuntimeError):
    """The ONNX export does not reproduce the native model's probabilities."""


@dataclass(frozen=True, slots=True)
class OnnxExport:
    model: bytes
    max_abs_diff: float
    rows_checked: int


def export_onnx(model: FittedModel, x_check: np.ndarray, tolerance: float = PARITY_TOLERANCE) -> OnnxExport:
    """Convert ``model`` and compare ONNX Runtime's class-1 probabilities with the native ones on every row of
    ``x_check`` (float32); raises :class:`OnnxParityError` when any row differs by more than ``tolerance``."""
    x = np.ascontiguousarray(x_check, dtype=np.float32)
    blob = model.to_onnx(x.shape[1])
    scores = onnx_scores(blob, x)
    native = model.predict(x)
    diff = np.abs(scores - native)
    worst = int(np.argmax(diff)) if len(diff) else 0
    max_diff = float(diff[worst]) if len(diff) else 0.0
    if not np.all(np.isfinite(scores)) or max_diff > tolerance:
        raise OnnxParityError(
            f"ONNX export of the {model.algorithm} model differs from the native model by {max_diff:.3g} "
            f"(tolerance {tolerance:g}) at row {worst} of {len(x)}: native {native[worst]!r}, onnx "
            f"{scores[worst]!r}; the artifact was not written")
    return OnnxExport(blob, max_diff, len(x))


def onnx_scores(blob: bytes, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the converters' declared label shape triggers a harmless warning
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(blob, sess_options=options, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    if ONNX_PROBABILITIES not in outputs:
        raise OnnxParityError(f"the ONNX graph has no {ONNX_PROBABILITIES!r} output (outputs: {outputs})")
    (probabilities,) = session.run([ONNX_PROBABILITIES], {ONNX_INPUT: x})
    return np.asarray(probabilities, dtype=np.float64)[:, 1]
