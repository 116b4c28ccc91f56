"""The hub's way to a channel socket: a `taskcast.hub.hub.Sink` that writes events' frames
straight to the socket while its subscriber is idle (on the socket itself while its transport
holds nothing, else through the transport), and the websocket that lets go of it before its
close frame is written.
"""

from __future__ import annotations

import asyncio
import logging
import os
from asyncio import selector_events
from collections.abc import Sequence

from aiohttp import WSCloseCode, web

from taskcast.hub.hub import StreamEvent, Subscription
from taskcast.web import wire

logger = logging.getLogger(__name__)

#: bytes a socket's write buffer may hold for the hub to write to it directly
DIRECT_BUFFER_LIMIT = 64 * 1024

#: the transport of asyncio's selector loop for a plain (not TLS) socket, whose own `write`
#: sends at once on the socket when nothing is queued in it (None if asyncio renames it)
_PLAIN_TRANSPORT: type | None = getattr(selector_events, "_SelectorSocketTransport", None)


def plain_socket_fd(transport: asyncio.BaseTransport | None) -> int:
    """The socket under a plain transport of asyncio's own loop, or -1 for any other (TLS,
    another loop): a frame for a transport that holds nothing may go straight to its socket.

    That is what the transport's `write` does itself in that case; done here, a fan-out's
    writes skip the transport's own steps, which cost about 7 % of them (measured in the paced
    benchmark: 81 against 87 µs for 50 sockets). Errors and partial writes are left to the
    transport, as its `write` would handle them.
    """
    if transport is None or _PLAIN_TRANSPORT is None or not isinstance(transport, _PLAIN_TRANSPORT):
        return -1
    sock = transport.get_extra_info("socket")
    return -1 if sock is None else int(sock.fileno())


def _send(fd: int, transport: asyncio.Transport, data: bytes) -> None:
    """Send `data` on the socket of a transport that holds nothing; what the socket does not
    take now goes through the transport, behind what was sent, as its own `write` would."""
    try:
        sent = os.write(fd, data)
    except OSError:
        # Full (BlockingIOError) or broken: the transport queues the frame, or meets the same
        # error and closes the connection as its own write would.
        sent = 0
    if sent < len(data):
        transport.write(data[sent:])


class ChannelSocket(web.WebSocketResponse):
    """A channel websocket whose sink stops writing before the close frame is written.

    aiohttp closes a socket from inside `receive` too (the peer's close frame, a bad frame), so
    the sink cannot learn it from the reader loop in time; `close` is where every close frame
    starts, and nothing may follow it.
    """

    sink: SocketSink | None = None

    async def close(
        self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True
    ) -> bool:
        if self.sink is not None:
            self.sink.detach()
        return await super().close(code=code, message=message, drain=drain)


class SocketSink:
    """The hub's way to one channel socket (a `taskcast.hub.hub.Sink`); the hub calls it
    inside `publish`, so nothing here awaits."""

    __slots__ = ("_fd", "_transport", "ended", "resume_after", "sender")

    def __init__(self, ws: ChannelSocket, transport: asyncio.Transport | None) -> None:
        ws.sink = self
        self._transport = transport
        #: the socket under a plain transport, written to while the transport holds nothing
        #: (-1: every write goes through the transport)
        self._fd = plain_socket_fd(transport)
        #: where a subscriber cut off may resume (None: not cut off)
        self.resume_after: int | None = None
        #: the task writing the subscription's frames, stopped at once by a cut-off
        self.sender: asyncio.Task[bool] | None = None
        #: `stop` is being written or was: the socket sends nothing more but the close
        self.ended = False

    def write(self, events: Sequence[StreamEvent]) -> bool:
        """Write events' frames straight to an idle socket.

        Only while the connection is open and its write buffer is small: otherwise the events
        are queued, and the sender writes them with flow control, in order behind nothing.
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        data = wire.event_wire(events)
        buffered = transport.get_write_buffer_size()
        if buffered > DIRECT_BUFFER_LIMIT:
            return False
        if buffered or self._fd < 0:
            transport.write(data)
        else:
            _send(self._fd, transport, data)
        return True

    @staticmethod
    def write_each(
        table: dict[Subscription, SocketSink], events: Sequence[StreamEvent]
    ) -> Sequence[Subscription]:
        """`write` to every socket of a stream's direct table, the frames made once; the
        subscribers whose socket cannot take them now (the hub's fast path, in one pass)."""
        data = wire.event_wire(events)
        size = len(data)
        send = os.write
        refused: list[Subscription] | None = None
        for subscription, sink in table.items():
            # `write`'s steps, written out: a call per subscriber is what this pass saves.
            transport = sink._transport
            if transport is None or transport.is_closing():
                buffered = -1
            else:
                buffered = transport.get_write_buffer_size()
                if not buffered and sink._fd >= 0:
                    try:
                        sent = send(sink._fd, data)
                    except OSError:
                        sent = 0
                    if sent < size:
                        transport.write(data[sent:])
                    continue
                if buffered <= DIRECT_BUFFER_LIMIT:
                    transport.write(data)
                    continue
            if refused is None:
                refused = []
            refused.append(subscription)
        return refused or ()

    def detach(self) -> None:
        """The socket is closing: nothing more is written straight to it (the sender's writes
        go through aiohttp, which refuses them after the close frame)."""
        self._transport = None
        self._fd = -1

    def cut_off(self, resume_after: int) -> None:
        """Stop the sender (it may wait on a peer that reads nothing); the reader loop closes
        the socket with 1013 and where to resume."""
        logger.info(
            "channel: subscriber too slow, closing with 1013 (resume after %d)", resume_after
        )
        self.resume_after = resume_after
        if self.sender is not None:
            self.sender.cancel()
