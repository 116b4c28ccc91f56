"""Small helpers for talking to the channel in tests."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from taskcast.web.channel import PATH

CHANNEL = PATH


async def read_until_closed(
    ws: aiohttp.ClientWebSocketResponse, timeout: float = 20
) -> list[dict[str, Any]]:
    """Every frame until the server closes the socket."""
    frames: list[dict[str, Any]] = []
    while True:
        message = await ws.receive(timeout=timeout)
        if message.type is aiohttp.WSMsgType.TEXT:
            frames.append(json.loads(message.data))
        elif message.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.CLOSED,
        ):
            return frames
        else:
            raise AssertionError(f"unexpected message {message!r}")


async def next_frame(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> dict[str, Any]:
    message = await ws.receive(timeout=timeout)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    frame: dict[str, Any] = json.loads(message.data)
    return frame


def event_data(frames: list[dict[str, Any]]) -> list[Any]:
    return [frame["data"] for frame in frames if frame.get("status") == "event"]
