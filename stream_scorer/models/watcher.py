"""Hot swap in every process: poll the routing files and version folders, load changes off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from types import TracebackType

from stream_scorer.gc_tuning import refreeze
from stream_scorer.models.base import ModelLoadError
from stream_scorer.models.registry import ModelRegistry
from stream_scorer.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class ModelWatcher:
    """``async with ModelWatcher(...)`` polls every ``interval`` seconds (0: only explicit reloads).

    A poll costs a few ``stat`` calls per model (and, every ``MODEL_ALIAS_POLL_INTERVAL``, a lookup of the MLflow
    aliases the routing names); loading (ONNX sessions, boosters) runs in a thread, so requests
    and batches keep being served by the current route until the new one is complete.
    """

    def __init__(self, registry: ModelRegistry, names: Sequence[str], interval: float, *,
                 missing_retry_sec: float = 10.0) -> None:
        self._registry = registry
        self._names = tuple(names)
        self._interval = interval
        self._missing_retry_sec = missing_retry_sec
        self._last_forced: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def reload(self, name: str, *, force: bool = True) -> bool:
        """Refresh one model now; ``True`` when its route changed. Raises ``ModelLoadError`` when refused."""
        async with self._lock:
            changed = await asyncio.to_thread(self._registry.refresh, name, force=force)
        if changed:
            refreeze()  # the retired version must be collectable
        return changed

    async def poll_once(self) -> None:
        loop = asyncio.get_running_loop()
        for name in self._names:
            # a model with no route at all (e.g. MLflow unreachable at start) is retried even if nothing changed
            missing = name not in self._registry.loaded()
            retry = missing and loop.time() - self._last_forced.get(name, float("-inf")) >= self._missing_retry_sec
            # in a thread: besides a few stat calls, it may look an MLflow alias up (a network or database call)
            if retry or await asyncio.to_thread(self._registry.changed_on_disk, name):
                if retry:
                    self._last_forced[name] = loop.time()
                with contextlib.suppress(ModelLoadError):  # logged and counted by the registry; old route serves
                    await self.reload(name, force=retry)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.poll_once()
            except Exception:  # never let the watcher die: the next poll tries again
                log.exception("model watcher poll failed")

    async def __aenter__(self) -> ModelWatcher:
        if self._interval > 0:
            self._task = asyncio.create_task(self._run(), name="model-watcher")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await cancel_and_wait(self._task)
