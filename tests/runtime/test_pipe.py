"""Tests of the worker protocol: what a worker writes reads back as the same messages, whole, in
order, bursts together; and how a pool slot hands them on."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys

import pytest

from taskcast.runtime.pipe import (
    Decoder,
    Done,
    Events,
    Message,
    Output,
    done_frame,
    event_frame,
    event_prefix,
    output_frame,
)
from taskcast.runtime.slot import Slot


def event(task_id: str, data_json: str) -> bytes:
    return event_frame(event_prefix(task_id), data_json)


def test_consecutive_events_of_a_task_are_handed_on_as_one_burst() -> None:
    frames = [
        event("a", '"1"'),
        event("a", '"2"'),
        output_frame("a", "printed\n"),
        event("a", '"3"'),
        event("b", '"b1"'),
        event("b", '"b2"'),
        done_frame("b"),
    ]
    assert Decoder().feed(b"".join(frames)) == [
        Events("a", ['"1"', '"2"']),
        Output("a", "printed\n"),
        Events("a", ['"3"']),
        Events("b", ['"b1"', '"b2"']),
        Done("b"),
    ]


def test_a_message_split_across_reads_waits_for_its_end() -> None:
    decoder = Decoder()
    whole = event("a", '"1"') + event("a", '"2"')
    cut = len(whole) - 5
    assert decoder.feed(whole[:cut]) == [Events("a", ['"1"'])]
    assert decoder.pending == cut - len(event("a", '"1"'))
    assert decoder.feed(whole[cut:] + done_frame("a")) == [Events("a", ['"2"']), Done("a")]
    assert decoder.pending == 0


def test_a_message_fed_one_byte_at_a_time_arrives_once_complete() -> None:
    decoder = Decoder()
    received: list[Message] = []
    for byte in output_frame("t", "line\n") + event("t", "{}"):
        received += decoder.feed(bytes((byte,)))
    assert received == [Output("t", "line\n"), Events("t", ["{}"])]


def test_an_event_keeps_its_text_exactly_whatever_it_holds() -> None:
    texts = ['"\\u017c\\u00f3\\u0142w"', '"a\\nb"', "{}", '"' + "x" * 100_000 + '"']
    task_id = "f" * 32
    assert Decoder().feed(b"".join(event(task_id, text) for text in texts)) == [
        Events(task_id, texts)
    ]


def test_each_frame_read_alone_gives_its_message_whatever_its_kind() -> None:
    """A read holding exactly one frame (a task sending its events apart) takes a shorter
    way for an event; every kind still comes out as when read with others."""
    decoder = Decoder()
    for text in ['"1"', '"\\u017c"', "{}", '"' + "y" * 70_000 + '"']:
        assert decoder.feed(event("t" * 40, text)) == [Events("t" * 40, [text])]
    assert decoder.feed(output_frame("t", "line\n")) == [Output("t", "line\n")]
    assert decoder.feed(done_frame("t")) == [Done("t")]
    head = event("a", '"1"')[:3]  # a frame's start left over from the last read
    assert decoder.feed(head) == []
    assert decoder.feed(event("a", '"1"')[3:] + event("a", '"2"')) == [Events("a", ['"1"', '"2"'])]
    assert decoder.pending == 0


def test_printed_text_crosses_unchanged_even_with_lone_surrogates() -> None:
    text = "żółw \udcff\n"
    assert Decoder().feed(output_frame("a", text)) == [Output("a", text)]


def test_a_task_id_longer_than_its_length_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than 255 bytes"):
        event_prefix("x" * 256)


def imported_by(module: str) -> set[str]:
    code = f"import sys; import {module}; print(' '.join(sys.modules))"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(output.split())


def test_the_protocol_imports_nothing_heavy() -> None:
    """Every worker imports it, and the worker itself never loads aiohttp."""
    assert not {"aiohttp", "asyncio"} & imported_by("taskcast.runtime.pipe")
    assert "aiohttp" not in imported_by("taskcast.runtime.worker")


def test_a_failing_handler_is_logged_and_the_next_messages_still_arrive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[Message] = []

    def handle(message: Message) -> None:
        if isinstance(message, Output):
            raise ValueError("handler broke")
        received.append(message)

    # No task is submitted, so no worker process is started: only the pipe reading is used.
    slot = Slot(0, multiprocessing.get_context("spawn"), handle)
    try:
        slot._dispatch(Decoder().feed(output_frame("a", "x") + event("a", '"1"')))
    finally:
        slot.dispose()
    assert received == [Events("a", ['"1"'])]
    assert "handling Output of task a from worker" in caplog.text
