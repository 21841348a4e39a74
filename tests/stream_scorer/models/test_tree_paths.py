"""Path attribution: exact local accuracy, equal to XGBoost's own Saabas output, same in numpy and ONNX Runtime."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

from stream_scorer.models.tree_paths import PathExplainer, from_lightgbm, from_xgboost


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.5, 2.0, size=(4000, 8))
    x[rng.random(x.shape) < 0.02] = np.nan
    logit = -2 + 0.8 * np.nan_to_num(x[:, 0]) - 0.5 * np.nan_to_num(x[:, 3]) + (np.nan_to_num(x[:, 5]) > 3)
    y = (rng.random(4000) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


def test_xgboost_local_accuracy_and_equality_with_xgboost_saabas() -> None:
    x, y = _data()
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 5, "eta": 0.2, "nthread": 1},
                        xgb.DMatrix(x, label=y), num_boost_round=40)
    ensemble = from_xgboost(booster.save_raw("json"), 8)
    ours = ensemble.contributions(x)
    margin = booster.inplace_predict(x, predict_type="margin")
    bias = margin - ours.sum(axis=1)
    assert np.ptp(bias) < 1e-4  # contributions + one constant == the margin, for every row
    saabas = booster.predict(xgb.DMatrix(x), pred_contribs=True, approx_contribs=True)[:, :-1]
    assert np.abs(saabas - ours).max() < 1e-5
    assert np.abs(PathExplainer(ensemble).contributions(x) - ours).max() < 1e-4
    leaf_sums, contributions = PathExplainer(ensemble).margins_and_contributions(x)
    assert np.array_equal(contributions, PathExplainer(ensemble).contributions(x))
    assert np.ptp(margin - leaf_sums) < 1e-4  # the leaf sums are the margin without the base score


def test_lightgbm_local_accuracy() -> None:
    x, y = _data(1)
    booster = lgb.train({"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1},
                        lgb.Dataset(x, label=y), num_boost_round=40)
    ensemble = from_lightgbm(booster.dump_model(), 8)
    x32 = x.astype(np.float32)  # the model scores float32 features (trained on them), as LightGBMModel does
    ours = ensemble.contributions(x32)
    margin = booster.predict(x32, raw_score=True)
    bias = margin - ours.sum(axis=1)
    assert np.ptp(bias) < 1e-5
    assert np.abs(PathExplainer(ensemble).contributions(x32) - ours).max() < 1e-4
    leaf_sums, _ = PathExplainer(ensemble).margins_and_contributions(x32)
    assert np.abs(margin - leaf_sums).max() < 1e-4  # LightGBM's leaves hold its whole raw score


@pytest.mark.parametrize("feature", [0, 3])
def test_the_driving_feature_gets_the_credit(feature: int) -> None:
    x, y = _data()
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "nthread": 1},
                        xgb.DMatrix(x, label=y), num_boost_round=30)
    contributions = from_xgboost(booster.save_raw("json"), 8).contributions(x)
    strength = np.abs(contributions).mean(axis=0)
    assert strength[feature] > np.median(strength) * 3
