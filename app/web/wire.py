"""The channel's frames (contract section B) for the hub's items, and their websocket framing
(RFC 6455 server-to-client text frames and the heartbeat's ping, without a library).

An event's frame is built once and kept in the event's `encoded` slot: the hub hands the same
event object to every subscriber, so a fan-out to 500 sockets encodes it once and writes the
same bytes 500 times.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Final

from taskcast.hub.hub import Item, StreamEnd, StreamEvent

START_FRAME: Final = '{"status":"start"}'
#: a server's PING frame with no payload: FIN, opcode 9, unmasked, length 0
PING_FRAME: Final = b"\x89\x00"

# The headers of the short frames most events are, built once.
_SHORT_HEADERS = tuple(bytes((0x81, size)) for size in range(126))


def text_frame(payload: bytes) -> bytes:
    """UTF-8 `payload` as one unmasked, final websocket text frame, as a server sends it."""
    size = len(payload)
    if size < 126:
        return _SHORT_HEADERS[size] + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


def _event_frames(event: StreamEvent) -> tuple[str, bytes]:
    """The event's channel frame and its websocket bytes, made on first use and then shared."""
    frames: tuple[str, bytes] | None = event.encoded
    if frames is None:
        text = f'{{"status":"event","data":{event.data_json},"seq":{event.seq}}}'
        frames = event.encoded = (text, text_frame(text.encode()))
    return frames


def _end_frame(end: StreamEnd) -> str:
    text: str | None = end.encoded
    if text is None:
        body: dict[str, object] = {"status": "stop", "state": end.state}
        if end.error:
            body["error"] = end.error
        text = end.encoded = json.dumps(body, separators=(",", ":"))
    return text


def frame(item: Item) -> str:
    """The channel frame of a hub item: `start`, `event` (with its seq) or `stop` (with the
    task's final state, and a short error text for failures)."""
    if isinstance(item, StreamEvent):
        frames: tuple[str, bytes] | None = item.encoded
        return (frames or _event_frames(item))[0]
    if isinstance(item, StreamEnd):
        return _end_frame(item)
    if item.epoch is not None:  # the Redis engine's extension field (contract B17)
        return json.dumps({"status": "start", "epoch": item.epoch}, separators=(",", ":"))
    return START_FRAME


def event_wire(events: Sequence[StreamEvent]) -> bytes:
    """The websocket bytes of consecutive events' frames, for one write."""
    if len(events) == 1:  # the common case, once per subscriber: one look-up when encoded
        frames: tuple[str, bytes] | None = events[0].encoded
        return (frames or _event_frames(events[0]))[1]
    return b"".join([_event_frames(event)[1] for event in events])
