"""Ids for events that brought none."""

from __future__ import annotations

import os
import re

from stream_scorer.core.identified import new_event_id


def test_new_event_ids_are_128_bit_hex_and_never_repeat() -> None:
    ids = [new_event_id() for _ in range(5000)]  # many draws from the OS
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_process_does_not_hand_out_its_parents_ids() -> None:
    new_event_id()  # the parent holds unused ids now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids, exit at once
        os.close(read)
        os.write(write, ",".join(new_event_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split(","))
    os.waitpid(pid, 0)
    parent = {new_event_id() for _ in range(10)}
    assert len(child) == 10 and not child & parent
