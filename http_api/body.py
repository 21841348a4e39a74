"""Request bodies parsed straight from bytes by pydantic-core, whatever the Content-Type.

``curl -d '{...}'`` sends ``application/x-www-form-urlencoded``; a scoring API should still read it as JSON.
Parsing the bytes directly is also faster than FastAPI's dict-then-model path. The OpenAPI document still
gets the schema (``openapi_body``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from stream_scorer.errors import ScoringError

M = TypeVar("M", bound=BaseModel)


class BodyTooLarge(ScoringError):
    status_code = 413
    code = "body_too_large"


async def parse_body(request: Request, schema: type[M], max_bytes: int) -> M:
    check_declared_size(request.headers.get("content-length"), max_bytes)
    raw = await request.body()
    return validate_body(raw, schema, max_bytes)


def check_declared_size(declared: str | None, max_bytes: int) -> None:
    """Refuse before reading when ``Content-Length`` already says too much."""
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(f"request body is {declared} bytes, the maximum is {max_bytes}", field="body")


def validate_body(raw: bytes, schema: type[M], max_bytes: int) -> M:
    """The size limit, then pydantic-core straight from the bytes; errors located under ``body``."""
    if len(raw) > max_bytes:
        raise BodyTooLarge(f"request body is {len(raw)} bytes, the maximum is {max_bytes}", field="body")
    try:
        return schema.model_validate_json(raw)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            loc = ("body", *err["loc"]) if err["type"] != "json_invalid" else ("body",)
            errors.append({**err, "loc": loc})
        raise RequestValidationError(errors) from None


def openapi_body(schema: type[BaseModel], examples: dict[str, Any] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema.model_json_schema()}
    if examples:
        content["examples"] = {k: {"value": v} for k, v in examples.items()}
    return {"requestBody": {"required": True, "content": {"application/json": content}}}
