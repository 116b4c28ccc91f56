"""The hub's way to a channel socket: a `taskcast.hub.hub.Sink` that writes events' frames
straight to the socket's transport while its subscriber is idle, and the websocket that lets go
of it before its close frame is written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiohttp import WSCloseCode, web

from taskcast.hub.hub import StreamEvent, Subscription
from taskcast.web import wire

logger = logging.getLogger(__name__)

#: bytes a socket's write buffer may hold for the hub to write to it directly
DIRECT_BUFFER_LIMIT = 64 * 1024


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

    __slots__ = ("_transport", "ended", "resume_after", "sender")

    def __init__(self, ws: ChannelSocket, transport: asyncio.Transport | None) -> None:
        ws.sink = self
        self._transport = transport
        #: where a subscriber cut off may resume (None: not cut off)
        self.resume_after: int | None = None
        #: the task writing the subscription's frames, stopped at once by a cut-off
        self.sender: asyncio.Task[bool] | None = None
        #: `stop` is being written or was: the socket sends nothing more but the close
        self.ended = False

    def write(self, events: Sequence[StreamEvent]) -> bool:
        """Write events' frames straight to an idle socket's transport.

        Only while the connection is open and its write buffer is small: otherwise the events
        are queued, and the sender writes them with flow control, in order behind nothing.
        """
        transport = self._transport
        if (
            transport is None
            or transport.is_closing()
            or transport.get_write_buffer_size() > DIRECT_BUFFER_LIMIT
        ):
            return False
        transport.write(wire.event_wire(events))
        return True

    @staticmethod
    def write_each(
        table: dict[Subscription, SocketSink], events: Sequence[StreamEvent]
    ) -> Sequence[Subscription]:
        """`write` to every socket of a stream's direct table, the frames made once; the
        subscribers whose socket cannot take them now (the hub's fast path, in one pass)."""
        data = wire.event_wire(events)
        refused: list[Subscription] | None = None
        for subscription, sink in table.items():
            # `write`'s checks, written out: a call per subscriber is what this pass saves.
            transport = sink._transport
            if (
                transport is None
                or transport.is_closing()
                or transport.get_write_buffer_size() > DIRECT_BUFFER_LIMIT
            ):
                if refused is None:
                    refused = []
                refused.append(subscription)
            else:
                transport.write(data)
        return refused or ()

    def detach(self) -> None:
        """The socket is closing: nothing more is written straight to it (the sender's writes
        go through aiohttp, which refuses them after the close frame)."""
        self._transport = None

    def cut_off(self, resume_after: int) -> None:
        """Stop the sender (it may wait on a peer that reads nothing); the reader loop closes
        the socket with 1013 and where to resume."""
        logger.info(
            "channel: subscriber too slow, closing with 1013 (resume after %d)", resume_after
        )
        self.resume_after = resume_after
        if self.sender is not None:
            self.sender.cancel()
