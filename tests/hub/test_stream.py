"""Tests of taskcast.hub.stream: a stream's bounded history (a kept head, a tail bounded in
count and bytes)."""

from __future__ import annotations

import json

from taskcast.hub.hub import Hub
from tests.hub.support import drain, kinds, publish_many, seqs

# -- bounded history -------------------------------------------------------------------------------


async def test_history_keeps_the_head_and_bounds_the_tail_by_count() -> None:
    hub = Hub(keep_head=2, max_events=5, max_bytes=1_000_000)
    stream = hub.open("s", "run1")
    publish_many(hub, "s", 1, 10)
    assert seqs(list(stream.history())) == [1, 2, 8, 9, 10]
    assert stream.dropped == 5
    assert len(stream) == 5
    assert stream.last_seq == 10
    hub.close("s", "success")
    # A late subscriber sees the jump in seq where events were dropped.
    assert kinds(await drain(hub.subscribe("s"))) == [
        "start:run1",
        "1",
        "2",
        "8",
        "9",
        "10",
        "end:success",
    ]


def test_history_bounds_the_tail_by_bytes() -> None:
    hub = Hub(keep_head=1, max_events=100, max_bytes=30)
    stream = hub.open("s", "run1")
    for _ in range(10):
        hub.publish("s", json.dumps("x" * 8))  # 10 bytes of JSON each
    assert seqs(list(stream.history())) == [1, 9, 10]
    assert stream.bytes == 30
    assert stream.dropped == 7


def test_history_head_holds_at_most_half_the_byte_bound() -> None:
    hub = Hub(keep_head=3, max_events=100, max_bytes=50)
    stream = hub.open("s", "run1")
    for _ in range(6):
        hub.publish("s", json.dumps("x" * 18))  # 20 bytes each: one fits in half of 50
    assert [event.seq for event in stream.head] == [1]
    assert seqs(list(stream.history())) == [1, 6]  # 20 + 20 bytes: a third would pass 50
    assert stream.bytes == 40 and stream.dropped == 4


def test_a_head_event_after_a_large_tail_event_still_keeps_the_byte_bound() -> None:
    hub = Hub(keep_head=3, max_events=100, max_bytes=100)
    stream = hub.open("s", "run1")
    for size in (10, 60, 30, 5):  # the 60 goes to the tail (the head may hold 50); then 30 and 5
        hub.publish("s", json.dumps("x" * (size - 2)))  # to the head, which pushes it out
    assert seqs(list(stream.history())) == [1, 3, 4]
    assert stream.bytes == 45 and stream.dropped == 1 and stream.dropped_bytes == 60


def test_history_after_skips_dropped_and_earlier_events() -> None:
    hub = Hub(keep_head=2, max_events=4, max_bytes=1_000_000)
    stream = hub.open("s", "run1")
    publish_many(hub, "s", 1, 8)
    assert seqs(list(stream.history())) == [1, 2, 7, 8]
    assert seqs(list(stream.history(after=1))) == [2, 7, 8]
    assert seqs(list(stream.history(after=5))) == [7, 8]
    assert stream.history(after=8) == []
