"""The task-events websocket `/schtasks/show_task_events/channel/` (contract section B).

One reader loop per socket answers pings and takes the one subscription; a separate sender task
drains the subscription, so pongs never wait behind a replay and a stalled reader only stalls its
own sender. Bad frames close the socket with a code and a reason; nothing else is affected.
A subscribe frame may name one run of the stream (`"run": task id`, Taskcast's extension, see
docs/element.md): its sender first waits for that run (`run_replay`), then sends it the same way.

The reader loop is also the one that closes, after `stop` (1000) or a cut-off (1013): once the
close pacer lets it begin (`taskcast.web.close_pacing`), it sends the close frame, then reads
(and answers nothing) until the client's close frame, as RFC 6455 section 7 asks, within
`CLOSE_TIMEOUT`. Closing the connection while a frame of the client's is
unread would make the kernel answer with a reset, and the client's kernel would then throw away
every byte of the stream it had not read yet. A peer that does not take the close frame within
the timeout is aborted, which frees what its connection holds at once.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from taskcast.errors import UnknownTaskError
from taskcast.hub.hub import StreamEnd, SubscriberTooSlow, Subscription
from taskcast.runtime.run_replay import subscribe_run
from taskcast.web import wire
from taskcast.web.channel_frames import (
    ProtocolError,
    epoch_request,
    parse_frame,
    run_request,
    subscription_request,
)
from taskcast.web.heartbeat import Beat
from taskcast.web.keys import POLICY, RUNNER, SOCKETS, USER
from taskcast.web.security import origin_allowed
from taskcast.web.socket_sink import ChannelSocket, SocketSink

logger = logging.getLogger(__name__)

PATH = "/schtasks/show_task_events/channel/"
PONG = '{"status":"pong"}'
#: the largest frame a client may send; subscribe and ping frames are tiny
MAX_CLIENT_FRAME = 4096
#: seconds a peer gets to take the close frame and answer it before its connection is dropped
CLOSE_TIMEOUT = 2.0
#: frames a sender writes before it lets the socket's reader run
YIELD_EVERY = 256


class RunFollow:
    """The subscription of a socket that follows one run, once the run has one."""

    __slots__ = ("subscription",)

    def __init__(self) -> None:
        self.subscription: Subscription | None = None


async def send_run(
    ws: web.WebSocketResponse,
    request: web.Request,
    run_id: str,
    after: int,
    sink: SocketSink,
    follow: RunFollow,
) -> bool:
    """`send_stream` for one run: waits for the run's stream (it may still be queued), then
    sends it from the hub or from the store."""
    try:
        follow.subscription = await subscribe_run(request.app[RUNNER], run_id, after, sink)
    except UnknownTaskError as exc:  # deleted while it was waited for
        logger.info("channel: the followed run is gone: %s", exc)
        return False
    return await send_stream(ws, follow.subscription, sink)


async def send_stream(
    ws: web.WebSocketResponse, subscription: Subscription, sink: SocketSink
) -> bool:
    """Write the subscription's frames in order; True once `stop` is written (the reader loop
    then closes with 1000), False if cut off or the connection is gone."""
    try:
        while True:
            batch = await subscription.next_batch()
            if not batch:
                return False
            for count, item in enumerate(batch, 1):
                if isinstance(item, StreamEnd):
                    # From here on the reader answers no ping: nothing follows `stop`.
                    sink.ended = True
                await ws.send_str(wire.frame(item))
                if count % YIELD_EVERY == 0:
                    # A long replay gives the reader a turn, so pings are answered during it.
                    await asyncio.sleep(0)
            if isinstance(batch[-1], StreamEnd):
                return True
    except (SubscriberTooSlow, ConnectionResetError):
        return False  # the reader loop closes with 1013; a reset one needs nothing more


async def finish(
    ws: web.WebSocketResponse, transport: asyncio.Transport | None, code: int, reason: str
) -> None:
    """Close: the close frame, then wait for the peer's (`ws.close` reads until it comes, or
    its own timeout); a peer that takes neither within CLOSE_TIMEOUT is aborted."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await ws.close(code=code, message=reason.encode())
    except (TimeoutError, ConnectionResetError):
        pass
    if transport is not None and transport.get_write_buffer_size():
        # The peer reads nothing: closing would wait for it forever, holding the buffer.
        logger.info("channel: the peer took no close frame (%d); connection aborted", code)
        transport.abort()


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
    # The heartbeat is the app's (`taskcast.web.heartbeat`), not aiohttp's per-socket timers, so
    # this loop answers the peer's pings and sees its pongs itself.
    ws = ChannelSocket(
        autoping=False,
        max_msg_size=MAX_CLIENT_FRAME + 1,  # aiohttp refuses a frame of exactly max_msg_size
        compress=False,
    )
    await ws.prepare(request)
    sockets = request.app[SOCKETS]
    sockets.add(ws)
    transport = request.transport
    beat = sockets.heartbeat.add(ws, transport) if transport is not None else None
    subscription: Subscription | None = None
    follow: RunFollow | None = None
    sink: SocketSink | None = None
    try:
        while not ws.closed:
            message = await receive(ws, sink, beat)
            if message is None:  # the sender is done: the stream ended, or it was cut off
                break
            if message.type is WSMsgType.BINARY:
                raise ProtocolError(WSCloseCode.UNSUPPORTED_DATA, "binary frames are not accepted")
            if message.type is WSMsgType.ERROR:
                # aiohttp has already closed the socket (1009 for a frame over the size limit).
                logger.info("channel: closed a socket (%s): %s", ws.close_code, message.data)
                break
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                break
            if message.type is not WSMsgType.TEXT:
                continue
            frame = parse_frame(message.data)
            if "ping" in frame:
                if sink is None or not sink.ended:
                    await ws.send_str(PONG)
            elif "id" in frame:
                if sink is not None:
                    raise ProtocolError(WSCloseCode.UNSUPPORTED_DATA, "one subscription per socket")
                stream_id, after = subscription_request(frame)
                if "run" in frame:
                    run_id = run_request(request, user, stream_id, frame)
                    sink, follow = SocketSink(ws, request.transport), RunFollow()
                    sink.sender = asyncio.create_task(
                        send_run(ws, request, run_id, after, sink, follow)
                    )
                    continue
                if not may_subscribe(request, user, stream_id):
                    raise ProtocolError(WSCloseCode.POLICY_VIOLATION, "not allowed")
                sink = SocketSink(ws, request.transport)
                subscription = await request.app[RUNNER].subscribe(
                    stream_id, after, sink, epoch_request(frame)
                )
                sink.sender = asyncio.create_task(send_stream(ws, subscription, sink))
        if sink is not None and sink.sender is not None and sink.sender.done() and not ws.closed:
            # The client has all it needs: the handshake waits its turn behind live streams.
            async with sockets.close_pacer.closing():
                if beat is not None:
                    sockets.heartbeat.remove(beat)  # nothing may follow the close frame
                if sink.resume_after is not None:
                    reason = f"too slow: resume after {sink.resume_after}"
                    await finish(ws, request.transport, WSCloseCode.TRY_AGAIN_LATER, reason)
                elif not sink.sender.cancelled() and sink.sender.result():
                    await finish(ws, request.transport, WSCloseCode.OK, "")
    except ProtocolError as exc:
        logger.info("channel: closing a socket (%s): %s", exc.code, exc.reason)
        if sink is not None and sink.sender is not None:
            sink.sender.cancel()  # nothing is written after the close frame
        if beat is not None:
            sockets.heartbeat.remove(beat)
        await finish(ws, request.transport, exc.code, exc.reason)
    finally:
        sockets.discard(ws)
        if beat is not None:
            sockets.heartbeat.remove(beat)
        if follow is not None and follow.subscription is not None:
            subscription = follow.subscription
        if subscription is not None:
            request.app[RUNNER].unsubscribe(subscription)
        if sink is not None and sink.sender is not None:
            sender = sink.sender
            if not sender.done():
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
            elif not sender.cancelled():
                # Done, as when `stop` was written: no turn of the loop is spent waiting on it.
                sender.exception()
    return ws


async def read_frame(ws: web.WebSocketResponse, beat: Beat | None) -> WSMessage:
    """The client's next frame other than a ping or a pong: pings are answered and pongs
    noted here, so the heartbeat costs the reader loop nothing."""
    while True:
        message = await ws.receive()
        if beat is not None:
            beat.heard()  # any frame shows the peer is there
        if message.type is WSMsgType.PING:
            if not ws.closed:
                await ws.pong(message.data)
        elif message.type is not WSMsgType.PONG:
            return message


async def receive(
    ws: web.WebSocketResponse, sink: SocketSink | None, beat: Beat | None
) -> WSMessage | None:
    """The client's next frame; None once the sender is done (stop written, or cut off).

    Without a sender it is a plain read. With one, the read waits beside it, so that this loop,
    not the sender, closes the socket: only the task that reads may finish the handshake.
    """
    sender = sink.sender if sink is not None else None
    if sender is None:
        return await read_frame(ws, beat)
    if sender.done():
        return None
    reading = asyncio.ensure_future(read_frame(ws, beat))

    def stop_reading(sender: asyncio.Task[bool]) -> None:
        # Nothing is lost: aiohttp's read leaves an unread frame queued.
        reading.cancel()

    # The sender's end cancels the read: one callback, where waiting on both cost two more
    # wake-ups of this task and two more of the read's, for every stream that ends.
    sender.add_done_callback(stop_reading)
    try:
        return await reading
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if sender.done() and reading.cancelled() and (task is None or not task.cancelling()):
            return None
        raise  # this handler itself is cancelled (the server stops, the peer left)
    finally:
        sender.remove_done_callback(stop_reading)


async def close_sockets(app: web.Application) -> None:
    """on_shutdown: every open channel socket is closed with 1001 (going away), all at once."""
    app[SOCKETS].heartbeat.stop()  # no ping may follow the close frames
    await asyncio.gather(
        *(
            ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
            for ws in app[SOCKETS]
        ),
        return_exceptions=True,
    )
