"""The task-events websocket `/schtasks/show_task_events/channel/` (contract section B).

One reader loop per socket answers pings and takes the one subscription; a separate sender task
drains the subscription, so pongs never wait behind a replay and a stalled reader only stalls its
own sender. Bad frames close the socket with a code and a reason; nothing else is affected.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from taskcast.hub.hub import StreamEnd, StreamEvent, SubscriberTooSlow, Subscription
from taskcast.web import wire
from taskcast.web.keys import POLICY, RUNNER, SETTINGS, SOCKETS, USER, SocketSet
from taskcast.web.security import origin_allowed

logger = logging.getLogger(__name__)

PATH = "/schtasks/show_task_events/channel/"
PONG = '{"status":"pong"}'
#: the largest frame a client may send; subscribe and ping frames are tiny
MAX_CLIENT_FRAME = 4096
#: seconds a too-slow subscriber gets to take its close frame before its connection is dropped
CLOSE_TIMEOUT = 2.0
#: bytes a socket's write buffer may hold for the hub to write to it directly
DIRECT_BUFFER_LIMIT = 64 * 1024
#: frames a sender writes before it lets the socket's reader run
YIELD_EVERY = 256


class ProtocolError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def parse_frame(text: str) -> dict[str, Any]:
    try:
        frame = json.loads(text)
    except ValueError:
        raise ProtocolError(WSCloseCode.INVALID_TEXT, "frame is not JSON") from None
    except RecursionError:  # JSON nested deeper than the parser goes: still a bad frame
        raise ProtocolError(WSCloseCode.INVALID_TEXT, "frame is nested too deeply") from None
    if not isinstance(frame, dict):
        raise ProtocolError(WSCloseCode.UNSUPPORTED_DATA, "frame must be a JSON object")
    return frame


def subscription_request(frame: dict[str, Any]) -> tuple[str, int]:
    stream_id, after = frame["id"], frame.get("after", 0)
    if not isinstance(stream_id, str) or not stream_id:
        raise ProtocolError(WSCloseCode.UNSUPPORTED_DATA, "id must be a non-empty string")
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ProtocolError(WSCloseCode.UNSUPPORTED_DATA, "after must be a whole number >= 0")
    return stream_id, after


async def send_stream(ws: web.WebSocketResponse, subscription: Subscription) -> None:
    """Write the subscription's frames in order, then close 1000 after `stop`."""
    try:
        while True:
            batch = await subscription.next_batch()
            if not batch:
                return
            for count, item in enumerate(batch, 1):
                await ws.send_str(wire.frame(item))
                if count % YIELD_EVERY == 0:
                    # A long replay gives the reader a turn, so pings are answered during it.
                    await asyncio.sleep(0)
            if isinstance(batch[-1], StreamEnd):
                await ws.close(code=WSCloseCode.OK)
                return
    except (SubscriberTooSlow, ConnectionResetError):
        return  # close_too_slow is closing the socket; a reset one needs nothing more


async def close_too_slow(
    ws: web.WebSocketResponse, transport: asyncio.Transport | None, resume_after: int
) -> None:
    """Tell a subscriber the hub cut off where to resume; drop it if it reads nothing at all."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await ws.close(
                code=WSCloseCode.TRY_AGAIN_LATER,
                message=f"too slow: resume after {resume_after}".encode(),
            )
    except (TimeoutError, ConnectionResetError):
        # A peer that has stopped reading will not read a close frame either.
        if transport is not None:
            transport.abort()


class SocketSink:
    """The hub's way to one channel socket (a `taskcast.hub.hub.Sink`); the hub calls it
    inside `publish`, so nothing here awaits."""

    __slots__ = ("_sockets", "_transport", "_ws")

    def __init__(
        self, sockets: SocketSet, ws: web.WebSocketResponse, transport: asyncio.Transport | None
    ) -> None:
        self._sockets = sockets
        self._ws = ws
        self._transport = transport

    def write(self, events: Sequence[StreamEvent]) -> bool:
        """Write events' frames straight to an idle socket's transport (the hub's fast path).

        Only while the connection is open and its write buffer is small: otherwise the events
        are queued, and the sender writes them with flow control, in order behind nothing.
        """
        transport = self._transport
        if (
            transport is None
            or self._ws.closed
            or transport.is_closing()
            or transport.get_write_buffer_size() > DIRECT_BUFFER_LIMIT
        ):
            return False
        transport.write(wire.event_wire(events))
        return True

    def cut_off(self, resume_after: int) -> None:
        """Close the socket with 1013 and where to resume; a peer that reads nothing is dropped."""
        logger.info(
            "channel: subscriber too slow, closing with 1013 (resume after %d)", resume_after
        )
        self._sockets.close_later(close_too_slow(self._ws, self._transport, resume_after))


def may_subscribe(request: web.Request, user: str, stream_id: str) -> bool:
    """The access policy decides on the stream's latest run; a stream not started yet is
    waited for, as the protocol says."""
    latest = request.app[RUNNER].latest_run(stream_id)
    return latest is None or request.app[POLICY].can_see(user, latest)


async def channel(request: web.Request) -> web.StreamResponse:
    user = request.get(USER)
    if user is None:  # embedded: the host's routes do not pass Taskcast's middleware
        user = await request.app[POLICY].identify(request)
        if user is None:
            return web.json_response(
                {"error": "unauthorized", "detail": "sign in first"}, status=401
            )
    if not origin_allowed(request):
        logger.warning("channel: refused origin %r", request.headers.get("Origin"))
        return web.json_response(
            {"error": "forbidden", "detail": "cross-origin websocket refused"}, status=403
        )
    # No per-socket compression: deflating small HTML fragments costs more CPU than it saves.
    ws = web.WebSocketResponse(
        heartbeat=request.app[SETTINGS].channel_heartbeat,
        max_msg_size=MAX_CLIENT_FRAME + 1,  # aiohttp refuses a frame of exactly max_msg_size
        compress=False,
    )
    await ws.prepare(request)
    sockets, runner = request.app[SOCKETS], request.app[RUNNER]
    sockets.add(ws)
    subscription: Subscription | None = None
    sender: asyncio.Task[None] | None = None
    try:
        async for message in ws:
            if message.type is WSMsgType.BINARY:
                raise ProtocolError(WSCloseCode.UNSUPPORTED_DATA, "binary frames are not accepted")
            if message.type is WSMsgType.ERROR:
                # aiohttp has already closed the socket (1009 for a frame over the size limit).
                logger.info("channel: closed a socket (%s): %s", ws.close_code, message.data)
                break
            if message.type is not WSMsgType.TEXT:
                continue
            frame = parse_frame(message.data)
            if "ping" in frame:
                await ws.send_str(PONG)
            elif "id" in frame:
                if subscription is not None:
                    raise ProtocolError(WSCloseCode.UNSUPPORTED_DATA, "one subscription per socket")
                stream_id, after = subscription_request(frame)
                if not may_subscribe(request, user, stream_id):
                    raise ProtocolError(WSCloseCode.POLICY_VIOLATION, "not allowed")
                sink = SocketSink(sockets, ws, request.transport)
                subscription = await runner.subscribe(stream_id, after, sink)
                sender = asyncio.create_task(send_stream(ws, subscription))
    except ProtocolError as exc:
        logger.info("channel: closing a socket (%s): %s", exc.code, exc.reason)
        await ws.close(code=exc.code, message=exc.reason.encode())
    finally:
        sockets.discard(ws)
        if subscription is not None:
            runner.unsubscribe(subscription)
        if sender is not None:
            await asyncio.gather(sender, return_exceptions=True)
    return ws


async def close_sockets(app: web.Application) -> None:
    """on_shutdown: every open channel socket is closed with 1001 (going away), all at once."""
    await asyncio.gather(
        *(
            ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
            for ws in app[SOCKETS]
        ),
        return_exceptions=True,
    )
