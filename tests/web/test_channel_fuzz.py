"""Fuzzing the channel: whatever a client sends, the server answers as the protocol says or
closes that one socket with the right code, logs no error, and every other socket goes on.

The oracle is the protocol as README.md states it, written out independently of the server:
frames over 4 KiB close with 1009, text that is not JSON with 1007, binary frames, non-objects
and badly typed fields with 1003; everything else is answered or quietly accepted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskcast import tasks
from taskcast.web.keys import HUB
from tests.conftest import ClientFactory
from tests.support.wsclient import CHANNEL, event_data, next_frame, read_until_closed

Client = TestClient[Any, Any]
LIMIT = 4096
#: log records at this level or above from these loggers mean the server mishandled a frame
WATCHED = ("aiohttp", "app", "asyncio")

FUZZ = settings(
    database=None,
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def expected_close(text: str) -> int | None:
    """The close code the protocol gives this text frame; None if the socket stays open."""
    if len(text.encode()) > LIMIT:  # frames over 4 KiB; one of exactly 4096 bytes is accepted
        return 1009
    try:
        frame = json.loads(text)
    except ValueError:
        return 1007
    if not isinstance(frame, dict):
        return 1003
    if "ping" in frame or "id" not in frame:
        return None
    stream_id, after = frame["id"], frame.get("after", 0)
    if not isinstance(stream_id, str) or not stream_id:
        return 1003
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        return 1003
    return None


# -- what a client may send --------------------------------------------------------------------

#: any code point, lone surrogates and NUL included (JSON escapes what UTF-8 cannot carry)
any_text = st.text(st.characters(codec=None, min_codepoint=0), max_size=30)
edge_text = st.sampled_from(
    ["", "\x00", "\ud800", "\udfff", "\ufeff", "\u202e", "\U0001f600", "a\u0301", "\uffff", " "]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
    | edge_text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=15,
)
protocol_objects = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values | any_text | edge_text | st.just("aio__fuzzed"),
        "after": json_values | st.integers(-3, 10**20),
        "ping": json_values,
        "extra": json_values,
    },
)


@st.composite
def json_frames(draw: st.DrawFn) -> str:
    value = draw(protocol_objects | json_values)
    text = json.dumps(value, ensure_ascii=draw(st.booleans()), allow_nan=True)
    try:
        text.encode()
    except UnicodeEncodeError:  # raw surrogates cannot go in a text frame; the escapes can
        text = json.dumps(value, allow_nan=True)
    return text


def near_the_limit(size: int) -> str:
    return json.dumps({"ping": "x" * (size - 12)})


text_frames = (
    json_frames()
    | st.text(max_size=50)
    | st.integers(LIMIT - 2, LIMIT + 2).map(near_the_limit)
    | st.integers(LIMIT, 50_000).map(lambda size: "x" * size)
)


# -- the server and its bystander ---------------------------------------------------------------


class Bystander:
    """A socket that subscribed before the fuzzing to a stream that starts after it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def still_served(self) -> None:
        await self.ws.send_json({"ping": "bystander"})
        assert await next_frame(self.ws, timeout=5) == {"status": "pong"}


@pytest.fixture
async def bystander(client: Client) -> AsyncIterator[Bystander]:
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json({"id": "aio__bystander"})
    yield Bystander(ws)


def server_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.split(".")[0] in WATCHED
    ]


async def outcome(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """After a frame: the close code if the server closed the socket, else None (it answered
    a ping sent after the frame, so the frame was handled and the socket kept)."""
    try:
        await ws.send_json({"ping": "after"})
    except ConnectionError:
        pass  # closed already; the close frame is waiting to be read
    while True:
        message = await ws.receive(timeout=5)
        if message.type is WSMsgType.TEXT:
            if json.loads(message.data) == {"status": "pong"}:
                return None
            continue  # a start, say, for a stream id that happens to exist
        assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED), message
        assert ws.close_code is not None
        return ws.close_code


async def check_frame(
    client: Client,
    bystander: Bystander,
    caplog: pytest.LogCaptureFixture,
    send: Any,
    expected: int | None,
) -> None:
    caplog.clear()
    ws = await client.ws_connect(CHANNEL)
    try:
        await send(ws)
        assert await outcome(ws) == expected
    finally:
        await ws.close()
    await bystander.still_served()
    assert server_errors(caplog) == []


# -- the fuzz tests --------------------------------------------------------------------------


@FUZZ
@given(text=text_frames)
async def test_any_text_frame_is_answered_or_refused_by_the_rules(
    client: Client, bystander: Bystander, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    await check_frame(client, bystander, caplog, lambda ws: ws.send_str(text), expected_close(text))


@FUZZ
@given(data=st.binary(max_size=5000))
async def test_any_binary_frame_is_refused(
    client: Client, bystander: Bystander, caplog: pytest.LogCaptureFixture, data: bytes
) -> None:
    expected = 1009 if len(data) > LIMIT else 1003
    await check_frame(client, bystander, caplog, lambda ws: ws.send_bytes(data), expected)


async def test_after_the_fuzzing_the_bystander_gets_its_whole_stream(
    client: Client, bystander: Bystander
) -> None:
    for frame in ("nope", "[1]", json.dumps({"id": "aio__bystander", "after": -1})):
        ws = await client.ws_connect(CHANNEL)
        await ws.send_str(frame)
        await read_until_closed(ws, timeout=5)
    task_id = tasks.async_task(
        "tests.support.sample_tasks.async_events", task_publish_id="bystander"
    )
    frames = await read_until_closed(bystander.ws)
    assert len(event_data(frames)) == 5 and frames[-1]["status"] == "stop"
    assert await tasks.wait_result(task_id, timeout=5) == 5
    assert client.app[HUB].subscriber_count == 0


# -- frames below the JSON level: raw websocket bytes -------------------------------------------


async def raw_socket(client: Client) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        f"GET {CHANNEL} HTTP/1.1\r\nHost: {client.host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    async with asyncio.timeout(5):
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # the 101 answer and its headers
    return reader, writer


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One websocket frame as a client writes it (masked). aiohttp also takes unmasked ones."""
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def server_close_code(reader: asyncio.StreamReader) -> int | None:
    """Read what the server sends until it hangs up; the code of its close frame, if any."""
    async with asyncio.timeout(5):
        data = b""
        while chunk := await reader.read(65536):
            data += chunk
    position = 0
    while position + 2 <= len(data):
        opcode, size = data[position] & 0x0F, data[position + 1] & 0x7F
        start = position + 2
        if size == 126:
            size, start = struct.unpack("!H", data[start : start + 2])[0], start + 2
        elif size == 127:
            size, start = struct.unpack("!Q", data[start : start + 8])[0], start + 8
        if opcode == 0x8:
            return int(struct.unpack("!H", data[start : start + 2])[0]) if size >= 2 else None
        position = start + size
    return None


RAW_CASES = {
    "text that is not UTF-8": (frame(0x1, b'{"ping": "\xff\xfe"}'), 1007),
    "a reserved opcode": (frame(0x3, b"x"), 1002),
    "a control frame over 125 bytes": (frame(0x9, b"p" * 126), 1002),
    "a continuation with nothing to continue": (frame(0x0, b"x"), 1002),
    "a close frame with a reserved code": (frame(0x8, struct.pack("!H", 1004)), 1002),
    "a frame that claims 2**62 bytes": (b"\x81\xff" + struct.pack("!Q", 1 << 62) + b"mask", 1009),
    "a text message split over frames past the limit": (
        frame(0x1, b'{"ping": "' + b"x" * 3000, fin=False) + frame(0x0, b"x" * 3000 + b'"}'),
        1009,
    ),
}


@pytest.mark.parametrize("case", sorted(RAW_CASES))
async def test_malformed_websocket_frames_close_only_that_connection(
    client: Client, bystander: Bystander, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    data, code = RAW_CASES[case]
    reader, writer = await raw_socket(client)
    try:
        writer.write(data)
        assert await server_close_code(reader) == code
    finally:
        writer.close()
    await bystander.still_served()
    assert server_errors(caplog) == []


async def test_a_message_split_over_frames_is_one_frame(client: Client) -> None:
    reader, writer = await raw_socket(client)
    try:
        writer.write(frame(0x1, b'{"pi', fin=False) + frame(0x0, b'ng": 1}'))
        async with asyncio.timeout(5):
            answer = await reader.readexactly(2 + len('{"status":"pong"}'))
        assert answer[2:] == b'{"status":"pong"}'
    finally:
        writer.close()


@FUZZ
@given(garbage=st.binary(min_size=1, max_size=300))
async def test_garbage_bytes_after_the_handshake_never_hurt_the_server(
    client: Client, bystander: Bystander, caplog: pytest.LogCaptureFixture, garbage: bytes
) -> None:
    caplog.clear()
    reader, writer = await raw_socket(client)
    try:
        writer.write(garbage)
        writer.write_eof()  # what the server has is all there is
        await server_close_code(reader)
    finally:
        writer.close()
    await bystander.still_served()
    assert server_errors(caplog) == []


async def test_deeply_nested_json_is_refused_cleanly(
    client: Client, bystander: Bystander, caplog: pytest.LogCaptureFixture
) -> None:
    deep = "[" * 1500 + "]" * 1500
    await check_frame(client, bystander, caplog, lambda ws: ws.send_str(deep), 1007)


async def test_the_fuzz_leaves_no_subscription_behind(make_client: ClientFactory) -> None:
    client = await make_client()
    for stream_id in ("\ud800", "x" * 4000, "\x00", "aio__fuzz"):
        ws = await client.ws_connect(CHANNEL)
        await ws.send_str(json.dumps({"id": stream_id}))
        await ws.send_json({"ping": 1})
        assert await next_frame(ws) == {"status": "pong"}
        await ws.close()
    await asyncio.sleep(0.05)
    assert client.app[HUB].subscriber_count == 0
