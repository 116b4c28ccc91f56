"""The worker protocol: the frames a worker writes on its slot's event pipe, and how the server
reads them back as typed messages. Both ends live here so the format is read in one place.

A frame is its body's length (4 bytes, network order) and the body: a one-byte mark saying what
the message is, the task id's length (one byte) and the id, then the message's text in UTF-8. An
event's text is its JSON exactly as the task encoded it, so the server publishes and stores it
without decoding or re-encoding anything; a pickle per event would cost more than the event. The
worker writes each frame with one `os.write`, whole, so frames from two threads never interleave.

Imported by every worker process: it must stay free of aiohttp and of anything heavy.
"""

from __future__ import annotations

import dataclasses
import logging
import struct

logger = logging.getLogger(__name__)

HEADER = struct.Struct("!I")

#: what a frame's body holds, by its first byte
EVENT_MARK = 0
OUTPUT_MARK = 1
DONE_MARK = 2

#: printed text may hold lone surrogates (from os.fsdecode, say); they cross the pipe unchanged
_TEXT_ERRORS = "surrogatepass"


@dataclasses.dataclass(frozen=True, slots=True)
class Events:
    """Consecutive events of one task, in order, as their JSON texts: published in one step."""

    task_id: str
    events: list[str]


@dataclasses.dataclass(frozen=True, slots=True)
class Output:
    """Text the task printed (complete lines, or the rest at its end)."""

    task_id: str
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class Done:
    """The task has ended and every message it sent is before this one."""

    task_id: str


Message = Events | Output | Done


# -- the worker's end ----------------------------------------------------------------------------


def event_prefix(task_id: str) -> bytes:
    """What starts the body of each event of `task_id`: made once per task, not per event."""
    return _prefix(EVENT_MARK, task_id)


def event_frame(prefix: bytes, data_json: str) -> bytes:
    """One event of the task whose `event_prefix` is `prefix`."""
    body = prefix + data_json.encode()
    return HEADER.pack(len(body)) + body


def output_frame(task_id: str, text: str) -> bytes:
    body = _prefix(OUTPUT_MARK, task_id) + text.encode("utf-8", _TEXT_ERRORS)
    return HEADER.pack(len(body)) + body


def done_frame(task_id: str) -> bytes:
    body = _prefix(DONE_MARK, task_id)
    return HEADER.pack(len(body)) + body


def _prefix(mark: int, task_id: str) -> bytes:
    tag = task_id.encode()
    if len(tag) > 255:
        raise ValueError(f"task id {task_id!r} is longer than 255 bytes")
    return bytes((mark, len(tag))) + tag


# -- the server's end ----------------------------------------------------------------------------


class Decoder:
    """Turns the bytes read from a pipe, in whatever pieces they come, into messages."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame kept for the next `feed`."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        """Every message completed by `data`, in order; consecutive events of one task are
        joined into one `Events`, so a burst is published and stored in one step."""
        buffer = self._buffer
        if not buffer and len(data) > 6 and data[4] == EVENT_MARK:
            # The commonest read: one whole event, as a task that sends them apart writes it.
            (size,) = HEADER.unpack_from(data)
            if size + 4 == len(data):
                text_at = 6 + data[5]
                return [Events(data[6:text_at].decode(), [data[text_at:].decode()])]
        buffer += data
        messages: list[Message] = []
        size_of = HEADER.unpack_from
        header_size = HEADER.size
        start = 0
        events_of: str | None = None  # the task of the events collected so far
        events: list[str] = []
        while len(buffer) - start >= header_size:
            (size,) = size_of(buffer, start)
            body = start + header_size
            end = body + size
            if len(buffer) < end:
                break
            start = end
            mark = buffer[body]
            text_at = body + 2 + buffer[body + 1]
            task_id = buffer[body + 2 : text_at].decode()
            if mark == EVENT_MARK:
                if task_id != events_of:
                    if events_of is not None:
                        messages.append(Events(events_of, events))
                    events_of, events = task_id, []
                events.append(buffer[text_at:end].decode())
                continue
            if events_of is not None:
                messages.append(Events(events_of, events))
                events_of = None
            if mark == OUTPUT_MARK:
                messages.append(Output(task_id, buffer[text_at:end].decode("utf-8", _TEXT_ERRORS)))
            elif mark == DONE_MARK:
                messages.append(Done(task_id))
            else:
                logger.error("pipe: a frame with the unknown mark %d was skipped", mark)
        if events_of is not None:
            messages.append(Events(events_of, events))
        del buffer[:start]
        return messages
