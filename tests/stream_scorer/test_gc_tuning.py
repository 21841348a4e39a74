"""GC_THRESHOLD: applied once per process, in a fresh interpreter (it changes the process's collector)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc
from stream_scorer.gc_tuning import tune_gc
before = gc.get_threshold()
for threshold in {thresholds}:
    tune_gc(threshold)
print(before[0], gc.get_threshold()[0], gc.get_threshold()[1:] == before[1:], gc.get_freeze_count() > 0)
"""


def _run(*thresholds: int) -> list[str]:
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(thresholds=list(thresholds))], capture_output=True,
                         text=True, check=True)
    return out.stdout.split()


def test_a_threshold_freezes_the_startup_objects_and_spaces_young_collections() -> None:
    assert _run(50_000) == ["700", "50000", "True", "True"]
    assert _run(50_000, 123) == ["700", "50000", "True", "True"]  # once per process


def test_zero_keeps_pythons_collector() -> None:
    assert _run(0) == ["700", "700", "True", "False"]


REFREEZE = """
import gc, weakref
from stream_scorer.gc_tuning import refreeze, tune_gc

class Model:  # a retired model in a reference cycle, alive when the process froze its startup objects
    pass

m = Model()
m.self = m
gone = weakref.ref(m)
refreeze()  # not tuned yet: does nothing
tune_gc(50_000)
del m
gc.collect()
print(gone() is not None)  # frozen: never collected
refreeze()
print(gone() is None, gc.get_freeze_count() > 0)
"""


def test_refreeze_after_a_swap_frees_a_retired_model_caught_in_a_cycle() -> None:
    out = subprocess.run([sys.executable, "-c", REFREEZE], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "True"]
