"""Ids for events that brought none."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime

from schemas.events import SessionEvent, TransactionEvent
from stream_scorer.core.identified import identify_requests, identify_session_event, identify_transaction, new_event_id


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


def test_requests_are_identified_as_one_by_one() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    events: list[TransactionEvent | SessionEvent] = [
        TransactionEvent(card_id="c", transaction_amount=1.0),
        TransactionEvent(card_id="c", transaction_amount=1.0, transaction_id="tx-1", timestamp=when),
        SessionEvent(user_id="u", item_id="i", event_id="ev-1"),
        SessionEvent(user_id="u", item_id="i", timestamp=when),
    ]
    now = 1_700_000_000.5
    batch = identify_requests(events, now)
    one_by_one = [identify_transaction(e, "generated", now) if isinstance(e, TransactionEvent)
                  else identify_session_event(e, "generated", now) for e in events]
    for ours, expected in zip(batch, one_by_one, strict=True):
        assert ours.event is expected.event and ours.ts == expected.ts
        assert ours.event_id == expected.event_id or (expected.event_id == "generated" and len(ours.event_id) == 32)
    assert [i.ts for i in batch] == [now, when.timestamp(), now, when.timestamp()]
    assert [i.event_id for i in batch][1:3] == ["tx-1", "ev-1"] and batch[0].event_id != batch[3].event_id
