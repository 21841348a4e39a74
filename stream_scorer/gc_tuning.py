"""Python's cycle collector tuned for a scoring process (``GC_THRESHOLD``, see ``Settings.gc_threshold``)."""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

_tuned = False


def tune_gc(threshold: int) -> None:
    """Once per process, after startup: freeze what is alive (never scanned again) and collect the young
    generation every ``threshold`` allocations instead of 700. ``threshold`` 0 leaves the collector as it is."""
    global _tuned
    if threshold <= 0 or _tuned:
        return
    _tuned = True
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)
    log.info("cycle collector tuned", extra={"gc_threshold": threshold, "gc_frozen": gc.get_freeze_count()})


def refreeze() -> None:
    """After a model swap in a tuned process: unfreeze, collect (the retired model may sit in reference cycles:
    frozen, it would never be freed), freeze again. One full collection per swap; nothing when not tuned."""
    if not _tuned:
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()
