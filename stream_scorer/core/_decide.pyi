from collections.abc import Sequence
from datetime import datetime, tzinfo

import numpy as np

from schemas.decisions import FraudDecision

def fraud_decisions(cls: type[FraudDecision], fields: tuple[str, ...], scores: Sequence[float],
                    served: Sequence[tuple[str, float, float]], factors: Sequence[list[int]],
                    rows: Sequence[Sequence[float]], names: tuple[str, ...],
                    table: tuple[tuple[str, int, str, str], ...],
                    event_ids: Sequence[str], times: Sequence[float], updated_at: Sequence[float | None],
                    missing: Sequence[list[str]], decision_ids: Sequence[str], now: float, scored_at: datetime,
                    latency_ms: float, degraded: bool, utc: tzinfo, /) -> tuple[list[FraudDecision], list[str]]: ...

def explanation(risk_level: str, score: float, values: Sequence[float], factors: Sequence[int],
                table: tuple[tuple[str, int, str, str], ...], /) -> str: ...

def top_factors(contributions: np.ndarray, limit: int, minimum: float, /) -> list[list[int]]: ...
