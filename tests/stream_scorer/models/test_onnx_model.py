"""One ONNX Runtime call for the score and its explanation, when the explainer reproduces the export's scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stream_scorer.core.features import FRAUD_FEATURE_NAMES
from stream_scorer.models.loader import load_model, probe_rows
from stream_scorer.models.onnx_model import OnnxModel
from stream_scorer.models.xgboost_model import XGBoostModel
from tests.support.artifacts import add_onnx_export, write_xgboost_artifact


@pytest.fixture
def fraud(tmp_path: Path) -> Path:
    folder = write_xgboost_artifact(tmp_path, "fraud", "v1")
    add_onnx_export(folder, folder)
    return folder


def _rows(n: int = 2000) -> np.ndarray:
    return np.random.default_rng(3).gamma(1.5, 2.0, size=(n, len(FRAUD_FEATURE_NAMES)))


def test_the_fused_call_gives_the_exports_scores_and_the_explainers_contributions(fraud: Path) -> None:
    model = load_model(fraud, expected_features=FRAUD_FEATURE_NAMES, use_onnx=True)
    assert isinstance(model, OnnxModel) and model.fused
    x = _rows()
    scores, contributions = model.score_and_explain(x)
    assert np.abs(scores - model.predict(x)).max() <= 1e-6  # the export's own float32 rounding
    assert np.array_equal(contributions, model.contributions(x))
    assert scores.shape == (len(x),) and contributions.shape == x.shape
    # a batch's rows are scored as they would be alone
    alone = np.array([model.score_and_explain(x[i:i + 1])[0][0] for i in range(50)])
    assert np.array_equal(alone, scores[:50])


def test_treeshap_explanations_keep_two_calls(fraud: Path) -> None:
    model = load_model(fraud, expected_features=FRAUD_FEATURE_NAMES, use_onnx=True, explain_method="treeshap")
    assert isinstance(model, OnnxModel) and not model.fused
    x = _rows(20)
    scores, contributions = model.score_and_explain(x)
    assert np.array_equal(scores, model.predict(x))
    assert np.array_equal(contributions, model.contributions(x))


def test_an_explainer_that_does_not_sum_to_the_models_scores_is_not_fused(tmp_path: Path, fraud: Path) -> None:
    native = load_model(fraud, expected_features=FRAUD_FEATURE_NAMES)
    other = load_model(write_xgboost_artifact(tmp_path, "fraud", "v2", seed=7), expected_features=FRAUD_FEATURE_NAMES)
    assert isinstance(native, XGBoostModel) and isinstance(other, XGBoostModel)
    native._explainer = other.path_explainer
    model = OnnxModel(native.metadata, native)
    assert not model.fuse(probe_rows(native.metadata))
    assert not model.fused


def test_a_model_whose_probability_is_not_the_logistic_of_its_margin_is_not_fused(fraud: Path) -> None:
    native = load_model(fraud, expected_features=FRAUD_FEATURE_NAMES)
    assert isinstance(native, XGBoostModel)
    native._booster.set_param({"objective": "binary:logitraw"})  # predict now returns the raw margin
    model = OnnxModel(native.metadata, native)
    assert not model.fuse(probe_rows(native.metadata))
