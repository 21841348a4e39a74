"""What the benchmarks measure besides time: CPU per process (``/proc``) and where a py-spy profile went."""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter
from pathlib import Path

PROFILE_PARTS = (
    ("scoring core: feature read (one round trip per batch) + parsing", ("StoreCalls._fetch",)),
    ("scoring core: features, model, explanation, decision objects, feature update",
     ("Scorer.score_transactions", "StoreCalls.score")),
    ("worker: decode events (pydantic)", ("decode (stream_scorer/worker/decode.py)",)),
    ("worker: produce decisions + wait for acks", ("FaustProducer.send", "BatchProcessor._send_all")),
    ("worker: rest of the batch (JSON encoding, metrics)", ("BatchProcessor.",)),
    ("faust: fetch, messages, tracking and acks (batch consumer)", ("BatchConsumer.", "Fetcher.", "on_message")),
    ("aiokafka: producer sender, client I/O", ("Sender.", "AIOKafkaClient", "AIOKafkaConnection")),
    ("redis-py: reading replies", ("redis/",)),
    ("event loop: select (idle)", ("EpollSelector.select",)),
)


def summarize_profile(path: Path, top: int = 12) -> None:
    """py-spy ``raw`` output (collapsed stacks, ~100 samples per second per busy thread): the share of samples
    in each part of the worker, then the functions with the most self time."""
    parts: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        n = int(count_text)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack_text.split(";")]
        leaf[frames[-1]] += n
        if frames[0].startswith("Thread._bootstrap"):
            parts["faust's consumer thread (aiokafka fetches)"] += n
            continue
        for name, keys in PROFILE_PARTS:
            if any(k in f for f in frames for k in keys):
                parts[name] += n
                break
        else:
            parts["other: event loop, task scheduling, faust services"] += n
    if not total:
        print("py-spy recorded nothing")
        return
    print(f"\nworker profile: {total} samples (~{total / 100:.1f} s of CPU), share by part")
    for name, n in parts.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("most self time")
    for name, n in leaf.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {name}")


def service_pids() -> dict[str, int]:
    """Redis and Kafka processes of the local stack, found by their command line."""
    found: dict[str, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            if b"redis-server" in cmdline:
                found.setdefault("redis", int(proc.name))
            elif b"kafka.Kafka" in cmdline:
                found.setdefault("kafka", int(proc.name))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """``cpu_seconds`` of a process and its descendants (e.g. uvicorn's worker processes)."""
    total = cpu_seconds(pid)
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    total += tree_cpu_seconds(int(child))
    return total


def steal_seconds() -> float:
    """CPU time the hypervisor gave to others, summed over the cores (``/proc/stat``)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def rss_mb(pid: int) -> float:
    """Resident memory of a process (``VmRSS`` in ``/proc/<pid>/status``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
