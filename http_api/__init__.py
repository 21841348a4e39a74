"""The FastAPI adapter over the scoring core."""

from http_api.app import create_app

__all__ = ["create_app"]
