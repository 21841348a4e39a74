"""Background tasks owned by a context manager (the model watcher, the lag reporter)."""

from __future__ import annotations

import asyncio
import contextlib


async def cancel_and_wait(task: asyncio.Task[None] | asyncio.Future[None] | None) -> None:
    """Cancel a background loop and wait until it has stopped (its ``finally`` blocks ran)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
