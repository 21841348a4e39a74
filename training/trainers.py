"""Choosing and fitting a model: ``--framework xgboost|lightgbm|sklearn-logreg|sklearn-hgb``.

All four output the probability of class 1, handle class imbalance through a positive-class weight and (the
boosted ones) stop early on the validation period. Frameworks are imported only when chosen.
"""

from __future__ import annotations

import importlib
import math
from typing import Literal, get_args

import numpy as np

from training.frameworks import FitData, FittedModel

Framework = Literal["xgboost", "lightgbm", "sklearn-logreg", "sklearn-hgb"]
FRAMEWORKS: tuple[str, ...] = get_args(Framework)
DEFAULT_FRAMEWORK: Framework = "xgboost"
PosWeightPolicy = Literal["sqrt", "balanced", "none"]
POS_WEIGHT_POLICIES: tuple[str, ...] = get_args(PosWeightPolicy)
DEFAULT_POS_WEIGHT: dict[str, PosWeightPolicy] = {"fraud": "sqrt", "personalization": "none"}
"""Fraud (~0.5% positives): ``sqrt(negatives / positives)``, enough weight for the rare class to shape the trees
while the scores stay usable as probabilities (``balanced`` inflates them by the full class ratio and lowered AP
in our measurements). Personalization (~5% converted views) is not imbalanced enough to need it, and its score is
served as a conversion probability, so it stays unweighted."""

_TRAINERS: dict[str, tuple[str, str]] = {
    "xgboost": ("training.frameworks.xgboost_trainer", "train"),
    "lightgbm": ("training.frameworks.lightgbm_trainer", "train"),
    "sklearn-logreg": ("training.frameworks.sklearn_trainer", "train_logreg"),
    "sklearn-hgb": ("training.frameworks.sklearn_trainer", "train_hgb"),
}


class TrainingDataError(ValueError):
    """The chosen periods cannot train a model (e.g. no known positive)."""


def positive_weight(labels: np.ndarray, policy: PosWeightPolicy) -> float:
    positives = float(np.sum(labels == 1))
    negatives = float(np.sum(labels == 0))
    if policy == "none" or positives == 0:
        return 1.0
    ratio = negatives / positives
    return math.sqrt(ratio) if policy == "sqrt" else ratio


def train_model(framework: str, data: FitData) -> FittedModel:
    if framework not in _TRAINERS:
        raise ValueError(f"unknown framework {framework!r}: choose one of {', '.join(FRAMEWORKS)}")
    for part, y in (("fit", data.y_fit), ("validation", data.y_val)):
        if len(np.unique(y)) < 2:
            raise TrainingDataError(
                f"the {part} period needs both classes but has {len(y)} rows with {int(np.sum(y))} known "
                "positive(s): widen the train period, or (fraud) make --delay-days at least the label arrival "
                "delay, since only labels that arrived by the start of the test period count for training")
    module, function = _TRAINERS[framework]
    trainer = getattr(importlib.import_module(module), function)
    model: FittedModel = trainer(data)
    return model
