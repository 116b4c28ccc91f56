"""Small helpers for talking to the channel in tests."""

from __future__ import annotations

import json
import socket
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


def stalled_reader(host: str, port: int, stream_id: str) -> socket.socket:
    """A raw websocket peer that subscribes, then never reads again (its receive buffer is
    tiny), so what the server sends it piles up on the server's side."""
    peer = socket.create_connection((host, port))
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    peer.sendall(
        f"GET {CHANNEL} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    payload = json.dumps({"id": stream_id}).encode()
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    peer.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    return peer
