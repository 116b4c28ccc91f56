"""Tests of how a pool slot reads its event pipe: whole messages, in order, bursts together."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import pytest

from app.pool import Message, Slot
from app.worker import pipe_frame


@pytest.fixture
def slot_and_messages() -> Iterator[tuple[Slot, list[Message]]]:
    received: list[Message] = []
    # No task is submitted, so no worker process is started: only the pipe reading is used.
    slot = Slot(0, multiprocessing.get_context("spawn"), received.append)
    yield slot, received
    slot.dispose()


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
    feed(slot, b"".join(pipe_frame(message) for message in messages))
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
    whole = pipe_frame(("event", "a", '"1"')) + pipe_frame(("event", "a", '"2"'))
    cut = len(whole) - 5
    feed(slot, whole[:cut])
    assert received == [("events", "a", ['"1"'])]
    feed(slot, whole[cut:] + pipe_frame(("done", "a")))
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
        feed(slot, b"".join(pipe_frame(message) for message in frames))
    finally:
        slot.dispose()
    assert received == [("events", "a", ['"1"'])]
    assert "handling ('output', 'a') from worker" in caplog.text
