"""Tests of taskcast.hub.history: a stream's kept tail as blocks of text, and what it keeps out
of the garbage collector's way."""

from __future__ import annotations

import collections
import gc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskcast.hub.history import BLOCK_CHARS, BLOCK_EVENTS, EventLog
from taskcast.hub.hub import Hub
from taskcast.hub.stream import Stream
from tests.hub.support import seqs


def fill(log: EventLog, first: int, count: int, text: str = '"x"') -> list[tuple[int, str]]:
    events = [(seq, f"{text}{seq}") for seq in range(first, first + count)]
    for seq, data in events:
        log.append(seq, data, len(data))
    return events


def test_events_come_back_in_order_across_sealed_and_open_blocks() -> None:
    log = EventLog()
    events = fill(log, 1, 3 * BLOCK_EVENTS + 5)
    assert list(log) == events
    assert len(log) == len(events)
    assert (log.first_seq, log.last_seq) == (1, 3 * BLOCK_EVENTS + 5)


def test_dropping_from_the_front_returns_each_size_and_keeps_the_rest_in_order() -> None:
    log = EventLog()
    events = fill(log, 1, 2 * BLOCK_EVENTS + 3)
    dropped = [log.popleft() for _ in range(BLOCK_EVENTS + 1)]
    assert dropped == [len(data) for _, data in events[: BLOCK_EVENTS + 1]]
    assert list(log) == events[BLOCK_EVENTS + 1 :]
    assert log.first_seq == BLOCK_EVENTS + 2
    while len(log):
        log.popleft()
    assert list(log) == [] and log.first_seq is None and log.last_seq is None
    with pytest.raises(IndexError):
        log.popleft()


def test_seqs_need_not_be_consecutive() -> None:
    # A stream's tail skips the seqs its head took after a large event went to the tail.
    log = EventLog()
    for seq in (3, 7, 8, 20):
        log.append(seq, f'"{seq}"', len(f'"{seq}"'))
    assert [seq for seq, _ in log] == [3, 7, 8, 20]
    log.popleft()
    assert log.first_seq == 7


def test_a_block_is_sealed_by_its_text_as_well_as_its_count() -> None:
    """What a partly dropped block keeps beyond the bound is at most about BLOCK_CHARS."""
    log = EventLog()
    big = "y" * (BLOCK_CHARS // 2)
    fill(log, 1, 5, text=big)
    # Two events fill a block, so dropping two frees a whole block's text.
    assert [log.popleft() for _ in range(2)] == [len(big) + 1] * 2
    assert len(log._blocks) == 1  # the sealing rule itself is under test
    assert [seq for seq, _ in log] == [3, 4, 5]


@given(st.lists(st.one_of(st.integers(min_value=1, max_value=300), st.none()), max_size=400))
def test_an_event_log_behaves_as_a_queue(steps: list[int | None]) -> None:
    """Appends (a text of n characters) and drops (None), against a deque."""
    log, model = EventLog(), collections.deque[tuple[int, str]]()
    seq = 0
    for step in steps:
        if step is None:
            if model:
                assert log.popleft() == len(model.popleft()[1])
            continue
        seq += 1
        text = "z" * step
        log.append(seq, text, len(text))
        model.append((seq, text))
    assert list(log) == list(model)
    assert len(log) == len(model)
    assert log.first_seq == (model[0][0] if model else None)


def test_a_stream_keeps_its_history_in_few_objects_the_collector_tracks() -> None:
    gc.collect()
    before = len(gc.get_objects())
    stream = Stream("s", "run1", keep_head=20, max_events=10_000, max_bytes=8 * 1024 * 1024)
    for seq in range(1, 10_001):
        stream.last_seq = seq
        stream.record(seq, f'"<li>item {seq}</li>"')
    gc.collect()
    tracked = len(gc.get_objects()) - before
    # One object per event would be 10,000: a block of events is three (itself, two arrays).
    assert tracked < 10_000 // 50, tracked
    assert len(stream) == 10_000


def test_replay_after_a_seq_across_blocks_with_a_trimmed_tail() -> None:
    hub = Hub(keep_head=3, max_events=3 + 2 * BLOCK_EVENTS, max_bytes=10_000_000)
    stream = hub.open("s", "run1")
    last = 5 * BLOCK_EVENTS
    for seq in range(1, last + 1):
        hub.publish("s", f'"{seq}"')
    tail = list(range(last - 2 * BLOCK_EVENTS + 1, last + 1))
    assert seqs(stream.history()) == [1, 2, 3, *tail]
    assert seqs(stream.history(after=2)) == [3, *tail]
    middle = tail[BLOCK_EVENTS + 7]
    assert seqs(stream.history(after=middle)) == list(range(middle + 1, last + 1))
    assert [event.data_json for event in stream.history(after=last - 1)] == [f'"{last}"']
    head, tail_from = stream.kept()
    assert head == [(1, '"1"'), (2, '"2"'), (3, '"3"')] and tail_from == tail[0]
    assert stream.dropped == last - 3 - len(tail)
