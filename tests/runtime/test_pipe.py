"""Tests of how a pool slot reads its event pipe: whole messages, in order, bursts together."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import pytest
from taskcast.runtime.pool import Message, Slot
from taskcast.runtime.worker import event_frame, event_prefix, pipe_frame


@pytest.fixture
def slot_and_messages() -> Iterator[tuple[Slot, list[Message]]]:
    received: list[Message] = []
    # No task is submitted, so no worker process is started: only the pipe reading is used.
    slot = Slot(0, multiprocessing.get_context("spawn"), received.append)
    yield slot, received
    slot.dispose()


def frame(message: tuple[Any, ...]) -> bytes:
    """`message` as the worker writes it: events in their own format, the rest pickled."""
    if message[0] == "event":
        return event_frame(event_prefix(message[1]), message[2])
    return pipe_frame(message)


def feed(slot: Slot, data: bytes) -> None:
    slot._buffer += data
    slot._dispatch_complete_messages()


def test_consecutive_events_of_a_task_are_handed_on_as_one_burst(
    slot_and_messages: tuple[Slot, list[Message]],
) -> None:
    slot, received = slot_and_messages
    messages: list[tuple[Any, ...]] = [
        ("event", "a", '"1"'),
        ("event", "a", '"2"'),
        ("output", "a", "printed\n"),
        ("event", "a", '"3"'),
        ("event", "b", '"b1"'),
        ("event", "b", '"b2"'),
    ]
    feed(slot, b"".join(frame(message) for message in messages))
    assert received == [
        ("events", "a", ['"1"', '"2"']),
        ("output", "a", "printed\n"),
        ("events", "a", ['"3"']),
        ("events", "b", ['"b1"', '"b2"']),
    ]


def test_a_message_split_across_reads_waits_for_its_end(
    slot_and_messages: tuple[Slot, list[Message]],
) -> None:
    slot, received = slot_and_messages
    whole = frame(("event", "a", '"1"')) + frame(("event", "a", '"2"'))
    cut = len(whole) - 5
    feed(slot, whole[:cut])
    assert received == [("events", "a", ['"1"'])]
    feed(slot, whole[cut:] + frame(("done", "a")))
    assert received == [("events", "a", ['"1"']), ("events", "a", ['"2"'])]
    assert slot._buffer == b""


def test_a_failing_handler_is_logged_and_the_next_messages_still_arrive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[Message] = []

    def handle(message: Message) -> None:
        if message[0] == "output":
            raise ValueError("handler broke")
        received.append(message)

    slot = Slot(0, multiprocessing.get_context("spawn"), handle)
    try:
        frames = [("output", "a", "x"), ("event", "a", '"1"')]
        feed(slot, b"".join(frame(message) for message in frames))
    finally:
        slot.dispose()
    assert received == [("events", "a", ['"1"'])]
    assert "handling ('output', 'a') from worker" in caplog.text


def test_an_event_keeps_its_text_exactly_whatever_it_holds(
    slot_and_messages: tuple[Slot, list[Message]],
) -> None:
    slot, received = slot_and_messages
    texts = ['"\\u017c\\u00f3\\u0142w"', '"a\\nb"', "{}", '"' + "x" * 100_000 + '"']
    task_id = "f" * 32
    feed(slot, b"".join(frame(("event", task_id, text)) for text in texts))
    assert received == [("events", task_id, texts)]


def test_a_task_id_longer_than_its_length_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than 255 bytes"):
        event_prefix("x" * 256)
