"""The naive baseline of bench/http.py: a minimal FastAPI app doing one Redis read and one model call.

What a team would write by hand: pydantic body, HGETALL of a precomputed feature hash, XGBoost
``inplace_predict``, a JSON answer with the score. No explanation, no windows, no metrics.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import redis.asyncio as aioredis
import xgboost as xgb
from fastapi import FastAPI
from pydantic import BaseModel

from stream_scorer.core.features import FRAUD_DEFAULTS, FRAUD_FEATURE_NAMES

state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
    state["redis"] = aioredis.Redis(host=os.environ.get("REDIS_HOST", "127.0.0.1"),
                                    port=int(os.environ.get("REDIS_PORT", "6379")),
                                    db=int(os.environ.get("REDIS_DB", "0")), decode_responses=True)
    booster = xgb.Booster(model_file=os.environ["NAIVE_MODEL_FILE"])
    booster.set_param({"nthread": 1})
    state["booster"] = booster
    yield
    await state["redis"].aclose()


app = FastAPI(lifespan=lifespan)


class Tx(BaseModel):
    card_id: str
    transaction_amount: float
    merchant_id: str | None = None
    mcc_code: str | None = None
    country_code: str | None = None


@app.post("/score/fraud")
async def score(tx: Tx) -> dict[str, float]:
    features = await state["redis"].hgetall(f"naive:card:{tx.card_id}")
    row = [float(features.get(n, FRAUD_DEFAULTS[n])) for n in FRAUD_FEATURE_NAMES]
    row[0] = tx.transaction_amount
    p = state["booster"].inplace_predict(np.array([row], dtype=np.float32), validate_features=False)
    return {"fraud_score": float(p[0])}
