"""Small real model artifacts for tests that need *a* model, not the trained one (those use training/)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xgboost as xgb

from stream_scorer.core.features import (
    FRAUD_DEFAULTS,
    FRAUD_FEATURE_NAMES,
    PERSONALIZATION_DEFAULTS,
    PERSONALIZATION_FEATURE_NAMES,
)


def _train(names: tuple[str, ...], drivers: dict[str, float], seed: int) -> xgb.Booster:
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.5, 2.0, size=(3000, len(names)))
    logit = -3.0 + sum(w * x[:, names.index(n)] for n, w in drivers.items())
    y = (rng.random(3000) < 1 / (1 + np.exp(-logit))).astype(int)
    return xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 1},
                     xgb.DMatrix(x, label=y), num_boost_round=20)


def write_xgboost_artifact(model_dir: Path, name: str, version: str = "v1", seed: int = 0) -> Path:
    if name == "fraud":
        names, defaults = FRAUD_FEATURE_NAMES, FRAUD_DEFAULTS
        drivers = {"card_small_tx_count_1h": 0.6, "card_amount_ratio_7d": 0.4, "card_country_is_new_7d": 1.0}
        thresholds = {"review": 0.5, "decline": 0.85}
    else:
        names, defaults = PERSONALIZATION_FEATURE_NAMES, PERSONALIZATION_DEFAULTS
        drivers = {"session_carts": 0.8, "user_category_share_14d": 0.5}
        thresholds = {"relevant": 0.5}
    folder = model_dir / name / version
    folder.mkdir(parents=True, exist_ok=True)
    _train(names, drivers, seed).save_model(folder / "model.json")
    metadata = {
        "name": name, "version": version, "framework": "xgboost", "model_file": "model.json",
        "onnx_file": None, "feature_names": list(names), "defaults": defaults, "thresholds": thresholds,
        "metrics": {"note": "test artifact"}, "created_at": datetime.now(UTC).isoformat(),
    }
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2))
    return folder


def add_onnx_export(folder: Path, source: Path) -> None:
    """Give ``folder``'s artifact the ONNX export (training's) of the booster in ``source``."""
    from training.frameworks.xgboost_trainer import XGBoostModel

    booster = xgb.Booster(model_file=str(source / "model.json"))
    (folder / "model.onnx").write_bytes(XGBoostModel(booster).to_onnx(booster.num_features()))
    meta = json.loads((folder / "metadata.json").read_text())
    meta["onnx_file"] = "model.onnx"
    (folder / "metadata.json").write_text(json.dumps(meta))
