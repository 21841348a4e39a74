"""A small Python client for the HTTP API, sync and async (httpx).

    from stream_scorer.client import ScoringClient
    with ScoringClient("http://localhost:8080") as client:
        decision = client.score_fraud(card_id="card_00001234", transaction_amount=150.0)
        print(decision["fraud_score"], decision["recommended_action"])
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx


class ScoringAPIError(RuntimeError):
    """A non-2xx answer; ``body`` is the API's JSON error (``error``, ``message``, ``field``)."""

    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status_code}: {body.get('message', body)}")
        self.status_code = status_code
        self.body = body
        self.field = body.get("field")


def _result(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = {"message": response.text}
    if response.is_error:
        raise ScoringAPIError(response.status_code, body)
    return dict(body)


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


class ScoringClient:
    def __init__(self, base_url: str = "http://localhost:8080", *, timeout: float = 5.0,
                 client: httpx.Client | None = None) -> None:
        self._http = client or httpx.Client(base_url=base_url, timeout=timeout)

    def score_fraud(self, card_id: str, transaction_amount: float, **optional: Any) -> dict[str, Any]:
        """Optional: ``merchant_id``, ``mcc_code``, ``country_code``, ``transaction_id``, ``timestamp``."""
        body = _clean({"card_id": card_id, "transaction_amount": transaction_amount, **optional})
        return _result(self._http.post("/score/fraud", json=body))

    def score_personalization(self, user_id: str, item_id: str, **optional: Any) -> dict[str, Any]:
        """Optional: ``item_category``, ``item_price``, ``session_id``, ``event_type``, ``event_id``."""
        return _result(self._http.post("/score/personalization",
                                       json=_clean({"user_id": user_id, "item_id": item_id, **optional})))

    def score_batch(self, model_type: str, requests: list[dict[str, Any]],
                    batch_id: str | None = None) -> dict[str, Any]:
        return _result(self._http.post("/score/batch", json=_clean(
            {"model_type": model_type, "requests": requests, "batch_id": batch_id})))

    def health(self) -> dict[str, Any]:
        return _result(self._http.get("/health"))

    def models(self) -> dict[str, Any]:
        return _result(self._http.get("/models"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ScoringClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AsyncScoringClient:
    def __init__(self, base_url: str = "http://localhost:8080", *, timeout: float = 5.0,
                 client: httpx.AsyncClient | None = None) -> None:
        self._http = client or httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def score_fraud(self, card_id: str, transaction_amount: float, **optional: Any) -> dict[str, Any]:
        body = _clean({"card_id": card_id, "transaction_amount": transaction_amount, **optional})
        return _result(await self._http.post("/score/fraud", json=body))

    async def score_personalization(self, user_id: str, item_id: str, **optional: Any) -> dict[str, Any]:
        return _result(await self._http.post("/score/personalization",
                                             json=_clean({"user_id": user_id, "item_id": item_id, **optional})))

    async def score_batch(self, model_type: str, requests: list[dict[str, Any]],
                          batch_id: str | None = None) -> dict[str, Any]:
        return _result(await self._http.post("/score/batch", json=_clean(
            {"model_type": model_type, "requests": requests, "batch_id": batch_id})))

    async def health(self) -> dict[str, Any]:
        return _result(await self._http.get("/health"))

    async def models(self) -> dict[str, Any]:
        return _result(await self._http.get("/models"))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncScoringClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
