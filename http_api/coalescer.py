"""Micro-batching of concurrent single-item requests.

Every ``/score/fraud`` (or ``/score/personalization``) request handled during the same event-loop iteration
joins one call of the scoring core: one feature-store round trip and one model call for all of them. With one
connection nothing waits (a batch of one is flushed on the next loop iteration); under concurrency the Redis
round trip and the model call are paid once per batch instead of once per request. Scoring only reads
features, so a decision does not depend on which requests shared its batch.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - item
O = TypeVar("O")  # noqa: E741 - outcome


class Coalescer(Generic[I, O]):
    def __init__(self, call: Callable[[Sequence[I]], Awaitable[Sequence[O]]], *, max_batch: int = 64) -> None:
        self._call = call
        self._max_batch = max_batch
        self._pending: list[tuple[I, asyncio.Future[O]]] = []
        self._flush_scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: I) -> O:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[O] = loop.create_future()
        self._pending.append((item, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    async def aclose(self) -> None:
        """Wait for the batches in flight (at shutdown, before the clients they use are closed)."""
        while self._pending or self._running:
            if self._pending and not self._flush_scheduled:
                self._flush()
            await asyncio.gather(*self._running, return_exceptions=True)
            await asyncio.sleep(0)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        for start in range(0, len(pending), self._max_batch):
            # a context of its own: the batch serves many requests, so it must not log as the first one's
            task = loop.create_task(self._run(pending[start:start + self._max_batch]), context=contextvars.Context())
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[I, asyncio.Future[O]]]) -> None:
        try:
            outcomes = await self._call([item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"scoring returned {len(outcomes)} outcomes for {len(batch)} requests")
        except BaseException as exc:  # every waiter gets the failure; none may hang
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():  # the client may have gone away
                future.set_result(outcome)
