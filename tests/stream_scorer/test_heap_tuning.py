"""HEAP_KEEP_MB: applied once per process, in a fresh interpreter (it changes the process's allocator)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

SCRIPT = """
import resource
from stream_scorer.heap_tuning import keep_freed_heap
print(*(keep_freed_heap(mb) for mb in {megabytes}))
def batch():  # what a scoring batch does: allocate ~600 KB of results, then free them all
    return [bytes(2000) for _ in range(300)]
batch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    batch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(*megabytes: int) -> tuple[list[str], int]:
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(megabytes=list(megabytes))], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    return out[0].split(), int(out[1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc" and os.environ.get("CI") != "true",
                    reason="mallopt is glibc's (CI machines have it: there the test never skips)")
def test_kept_heap_stops_each_batch_from_faulting_its_memory_in_again() -> None:
    tuned, tuned_faults = _run(64, 64)
    default, default_faults = _run(0)
    assert tuned == ["True", "False"]  # once per process
    assert default == ["False"]
    assert default_faults >= 50 * 20  # glibc's defaults: the freed top of the heap is returned every batch
    assert tuned_faults < default_faults / 20
